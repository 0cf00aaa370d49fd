"""Building blocks for matrix and settlement API tests: documents, steps, and the invariants of SPEC §6-§7."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from tortoise import Tortoise

MATRIX_FIELDS = """
  id type status requestedBy batchCount checksum
  criteria { model { name } period { unit start end } currencies segment { key value } batchStatuses }
  participants { participantId currency debit credit net }
  settleable { participantId currency debit credit net }
  byStatus { status currency batchCount debit credit }
  byCurrency { currency batchCount debit credit }
  batches(first: 500) { totalCount edges { node { id name status } } }
"""
PAYLOAD = (f"matrix {{ {MATRIX_FIELDS} }} skipped {{ batch {{ id name status }} reason }} "
           "userErrors { code message field }")

CREATE = f"mutation($i: MatrixInput!) {{ createMatrix(input: $i) {{ {PAYLOAD} }} }}"
CREATE_STATIC = f"mutation($b: [ID!]!) {{ createStaticMatrix(batchIds: $b) {{ {PAYLOAD} }} }}"
ADD = f"mutation($id: ID!, $b: [ID!]!) {{ addMatrixBatches(id: $id, batchIds: $b) {{ {PAYLOAD} }} }}"
REMOVE = f"mutation($id: ID!, $b: [ID!]!) {{ removeMatrixBatches(id: $id, batchIds: $b) {{ {PAYLOAD} }} }}"
CLOSE = f"mutation($id: ID!) {{ closeMatrix(id: $id) {{ {PAYLOAD} }} }}"
DISPUTE = f"mutation($id: ID!, $r: String) {{ disputeMatrix(id: $id, reason: $r) {{ {PAYLOAD} }} }}"
REQUEST = f"mutation($id: ID!, $c: String) {{ requestSettlement(id: $id, expectedChecksum: $c) {{ {PAYLOAD} }} }}"
CANCEL = f"mutation($id: ID!) {{ cancelSettlement(id: $id) {{ {PAYLOAD} }} }}"
REPORT = """id settledAt requestedBy settledBy matrix { id status }
  participants { participantId currency debit credit net } batches { id name status ownerMatrix { id } }"""
SETTLE = f"""mutation($id: ID!, $c: String) {{ settleMatrix(id: $id, expectedChecksum: $c) {{
  matrix {{ {MATRIX_FIELDS} }} report {{ {REPORT} }} userErrors {{ code message field }} }} }}"""
MATRIX = f"query($id: ID!) {{ matrix(id: $id) {{ {MATRIX_FIELDS} settlement {{ {REPORT} }} }} }}"
POSITIONS = "{ participants { id positions { currency unsettledNet settledNet settlementBalance } } }"


def period(start: str, end: str, unit: str = "HOUR") -> dict[str, str]:
    return {"unit": unit, "start": start, "end": end}


async def create_model(gql: Any, name: str = "RTGS", interval: int = 60, **extra: Any) -> None:
    data = await gql("""mutation($i: SettlementModelInput!) { createSettlementModel(input: $i) {
        model { name } userErrors { code message } } }""",
                     {"i": {"name": name, "batchIntervalSeconds": interval, **extra}}, role="operator")
    assert data["createSettlementModel"]["userErrors"] == [], data


async def create_matrix(gql: Any, model: str = "RTGS", start: str = "2026-03-02T14:00:00+00:00",
                        end: str = "2026-03-02T15:00:00+00:00", unit: str = "HOUR", **extra: Any) -> dict[str, Any]:
    data = await gql(CREATE, {"i": {"model": model, "period": period(start, end, unit), **extra}}, role="operator")
    payload = data["createMatrix"]
    assert payload["userErrors"] == [], payload
    return payload["matrix"]


async def matrix(gql: Any, matrix_id: str) -> dict[str, Any]:
    return (await gql(MATRIX, {"id": matrix_id}, role="viewer"))["matrix"]


async def command(gql: Any, document: str, name: str, role: str = "operator", **variables: Any) -> dict[str, Any]:
    return (await gql(document, variables, role=role))[name]


def by_participant(totals: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    return {(t["participantId"], t["currency"]): t["net"] for t in totals}


async def rows(sql: str) -> list[dict[str, Any]]:
    return list(await Tortoise.get_connection("default").execute_query_dict(sql))


async def check_invariants(gql: Any) -> None:
    """SPEC §4, §6, §7, after every scenario: nets balance, entries balance, positions add up."""
    assert await rows("SELECT batch_id FROM batch_account GROUP BY batch_id HAVING SUM(credit - debit) <> 0") == []
    assert await rows("SELECT settlement_id, currency FROM matrix_settlement_total GROUP BY settlement_id, currency "
                      "HAVING SUM(credit - debit) <> 0") == []
    assert await rows("SELECT entry_id FROM journal_line GROUP BY entry_id HAVING SUM(debit) <> SUM(credit)") == []
    assert await rows("SELECT e.id FROM journal_entry e LEFT JOIN journal_line l ON l.entry_id = e.id "
                      "GROUP BY e.id HAVING COUNT(l.id) < 2") == []
    # What each settlement reports equals the sums of the batches it settled.
    settled = await rows(
        "SELECT s.id AS sid, a.participant_id AS p, a.currency AS c, SUM(a.debit) AS d, SUM(a.credit) AS k "
        "FROM matrix_settlement s JOIN batch b ON b.owner_matrix_id = s.matrix_id AND b.status = 'SETTLED' "
        "JOIN batch_account a ON a.batch_id = b.id GROUP BY s.id, a.participant_id, a.currency")
    reported = await rows("SELECT settlement_id AS sid, participant_id AS p, currency AS c, debit AS d, credit AS k "
                          "FROM matrix_settlement_total")
    assert sorted((r["sid"], r["p"], r["c"], int(r["d"]), int(r["k"])) for r in settled) == \
        sorted((r["sid"], r["p"], r["c"], int(r["d"]), int(r["k"])) for r in reported)
    # Every SETTLED batch belongs to exactly one settled matrix; never settled twice.
    assert await rows("SELECT b.id FROM batch b LEFT JOIN settlement_matrix m ON m.id = b.owner_matrix_id "
                      "WHERE b.status = 'SETTLED' AND (m.id IS NULL OR m.status <> 'SETTLED')") == []
    assert await rows("SELECT batch_id FROM batch_history WHERE to_status = 'SETTLED' "
                      "GROUP BY batch_id HAVING COUNT(*) > 1") == []
    # Participant positions equal the sums of their batches; the ledger agrees with the settled nets.
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in await rows("SELECT a.participant_id AS p, a.currency AS c, b.status AS s, a.credit - a.debit AS n "
                        "FROM batch_account a JOIN batch b ON b.id = a.batch_id"):
        sums[(r["p"], r["c"])][1 if r["s"] == "SETTLED" else 0] += int(r["n"])
    api = (await gql(POSITIONS, role="viewer"))["participants"]
    seen = {}
    for participant in api:
        for pos in participant["positions"]:
            seen[(participant["id"], pos["currency"])] = pos
            assert pos["settledNet"] == pos["settlementBalance"], (participant["id"], pos)
    assert set(seen) == set(sums)
    for key, (unsettled, settled_net) in sums.items():
        scale = Decimal(10) ** -2
        assert Decimal(seen[key]["unsettledNet"]) == Decimal(unsettled) * scale, key
        assert Decimal(seen[key]["settledNet"]) == Decimal(settled_net) * scale, key
    # The hourly rollup equals the batches it summarises, bucket by bucket.
    rollup: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in await rows("SELECT model_id, currency, segment_key, bucket, status, participant_id, debit, credit, "
                        "batch_count FROM batch_bucket_total"):
        key = (r["model_id"], r["currency"], r["segment_key"], int(r["bucket"]), r["status"], r["participant_id"])
        for i, column in enumerate(("debit", "credit", "batch_count")):
            rollup[key][i] += int(r[column])
    base: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in await rows("SELECT b.model_id, b.currency, b.segment_key, b.window_start, b.status, a.participant_id, "
                        "a.debit, a.credit FROM batch b JOIN batch_account a ON a.batch_id = b.id"):
        key = (r["model_id"], r["currency"], r["segment_key"], _hour(r["window_start"]), r["status"],
               r["participant_id"])
        base[key][0] += int(r["debit"])
        base[key][1] += int(r["credit"])
    for r in await rows("SELECT model_id, currency, segment_key, window_start, status FROM batch"):
        base[(r["model_id"], r["currency"], r["segment_key"], _hour(r["window_start"]), r["status"], "")][2] += 1
    assert {k: v for k, v in rollup.items() if any(v)} == dict(base)


def _hour(value: Any) -> int:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return int(moment.timestamp()) // 3600 * 3600


def net_sum(totals: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(t["net"]) for t in totals), Decimal(0))
