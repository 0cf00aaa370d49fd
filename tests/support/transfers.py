"""Building blocks for API tests that record transfers."""
from __future__ import annotations

from typing import Any

RECORD = """
mutation($t: [TransferInput!]!) {
  recordTransfers(transfers: $t) {
    recorded duplicates rejected
    results { transferId outcome batch { id name sequence status } error { code message field } }
    userErrors { code message field }
  }
}
"""

BATCH = """
query($ref: BatchRef!) {
  batch(ref: $ref) {
    id name sequence status currency transferCount windowStart windowEnd
    segment { key value }
    model { name }
    accounts { participantId currency debit credit net }
    history { from to actor reason }
  }
}
"""


def transfer(transfer_id: str, payer: str = "dfsp-a", payee: str = "dfsp-b", amount: str = "10.00",
             currency: str = "USD", committed_at: str = "2026-03-02T14:05:00+00:00", **extra: Any) -> dict[str, Any]:
    item = {"transferId": transfer_id, "payerId": payer, "payeeId": payee, "amount": amount, "currency": currency,
            "committedAt": committed_at}
    item.update(extra)
    return item


async def record(gql: Any, *transfers: dict[str, Any], role: str = "ingest") -> dict[str, Any]:
    data = await gql(RECORD, {"t": list(transfers)}, role=role)
    return data["recordTransfers"]
