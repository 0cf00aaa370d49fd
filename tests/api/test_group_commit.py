"""Group commit of small recordTransfers calls (app/recording.py, CallGroups): concurrent calls share a
transaction, and every call still gets exactly the outcomes, errors and audit entry it would get alone."""
from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from tortoise import Tortoise

from app import audit, recording
from app.recording import TransferRequest
from tests.api.transfers import BATCH, RECORD, transfer

CALLS = 40


async def _record(gql, transfers):
    return (await gql(RECORD, {"t": transfers}, role="ingest"))["recordTransfers"]


async def _audit_entries(operation: str) -> list[dict]:
    conn = Tortoise.get_connection("default")
    return list(await conn.execute_query_dict(
        "SELECT actor, outcome, detail FROM audit_entry WHERE operation = $1" if conn.capabilities.dialect
        == "postgres" else "SELECT actor, outcome, detail FROM audit_entry WHERE operation = ?", [operation]))


async def test_concurrent_calls_share_transactions_and_keep_their_own_outcomes(gql):
    groups = recording._groups()
    groups_before, calls_before = groups.groups, groups.calls
    # Every call is sent at once: single transfers, a retry of one of them (same content: DUPLICATE), a clash
    # (same id, other content: TRANSFER_CONFLICT), and a call whose second transfer is bad.
    calls = [[transfer(f"g-{i}", payer=f"dfsp-{i % 4}", payee="hub-b", amount="1.25")] for i in range(CALLS - 3)]
    calls.append([transfer("g-0", payer="dfsp-0", payee="hub-b", amount="1.25")])
    calls.append([transfer("g-1", payer="dfsp-1", payee="hub-b", amount="9.99")])
    calls.append([transfer("g-extra", payer="dfsp-9", payee="hub-b", amount="2"),
                  transfer("g-bad", payer="dfsp-9", payee="hub-b", amount="2.001")])
    answers = await asyncio.gather(*(_record(gql, c) for c in calls))

    grouped = groups.groups - groups_before
    assert groups.calls - calls_before == CALLS
    assert grouped < CALLS, "the concurrent calls should have shared transactions"

    # The two calls of g-0 as if one came after the other: one RECORDED, one DUPLICATE in the same batch.
    g0 = sorted((answers[0]["results"][0], answers[CALLS - 3]["results"][0]), key=lambda r: r["outcome"])
    assert [r["outcome"] for r in g0] == ["DUPLICATE", "RECORDED"]
    assert g0[0]["batch"]["id"] == g0[1]["batch"]["id"]
    assert (answers[0]["recorded"] + answers[CALLS - 3]["recorded"],
            answers[0]["duplicates"] + answers[CALLS - 3]["duplicates"]) == (1, 1)
    # g-1 with other content: one RECORDED, one TRANSFER_CONFLICT whose field is its own call's index 0.
    g1 = sorted((answers[1]["results"][0], answers[CALLS - 2]["results"][0]), key=lambda r: r["outcome"])
    assert [r["outcome"] for r in g1] == ["RECORDED", "REJECTED"]
    assert g1[1]["error"]["code"] == "TRANSFER_CONFLICT"
    assert g1[1]["error"]["field"] == ["transfers", "0", "transferId"]
    # The mixed call: its first transfer recorded, its second rejected at its own index 1.
    mixed = answers[CALLS - 1]
    assert (mixed["recorded"], mixed["rejected"]) == (1, 1)
    assert mixed["results"][1]["error"]["code"] == "AMOUNT_SCALE"
    assert mixed["results"][1]["error"]["field"][:2] == ["transfers", "1"]
    for answer in answers[2:CALLS - 3]:
        assert (answer["recorded"], answer["duplicates"], answer["rejected"]) == (1, 0, 0)

    # Totals: every recorded transfer once, nothing of the refused ones.
    batch = (await gql(BATCH, {"ref": {"transferId": "g-2"}}))["batch"]
    assert batch["transferCount"] == CALLS - 3 + 1
    credit = {a["participantId"]: Decimal(a["credit"]) for a in batch["accounts"]}
    assert credit["hub-b"] == Decimal("1.25") * (CALLS - 3) + 2
    assert sum(Decimal(a["net"]) for a in batch["accounts"]) == 0
    assert [h["reason"] for h in batch["history"]] == ["created"]

    # One audit entry per call, with that call's own counts.
    entries = await _audit_entries("recordTransfers")
    assert len(entries) == CALLS
    assert {e["actor"] for e in entries} == {"clearing-engine"} and {e["outcome"] for e in entries} == {"OK"}
    counts = Counter()
    for entry in entries:
        detail = entry["detail"] if isinstance(entry["detail"], dict) else json.loads(entry["detail"])
        counts.update(detail)
    assert counts == Counter(recorded=CALLS - 3 + 1, duplicates=1, rejected=2)


def _request(transfer_id: str, amount: str = "3.00") -> TransferRequest:
    return TransferRequest(transfer_id, "dfsp-a", "dfsp-b", amount, "USD", datetime(2026, 3, 2, 14, 5, tzinfo=UTC))


async def test_a_call_that_fails_inside_a_group_fails_alone(gql, server):
    """The group's transaction fails because of one call; the others are written again, one by one."""

    def broken_entry(result: recording.RecordingResult) -> audit.Entry:
        raise RuntimeError("this call's audit entry cannot be built")

    def entry(result: recording.RecordingResult) -> audit.Entry:
        return audit.entry(None, "recordTransfers", "1 transfer(s)", "OK", {"recorded": result.count("RECORDED")})

    calls = [recording.record_transfers([_request(f"f-{i}")], "clearing-engine", entry) for i in range(6)]
    calls.insert(3, recording.record_transfers([_request("f-broken")], "clearing-engine", broken_entry))
    outcomes = await asyncio.gather(*calls, return_exceptions=True)

    assert isinstance(outcomes[3], RuntimeError)
    good = [o for i, o in enumerate(outcomes) if i != 3]
    assert all(isinstance(o, recording.RecordingResult) and o.count("RECORDED") == 1 for o in good), outcomes
    batch = (await gql(BATCH, {"ref": {"transferId": "f-0"}}))["batch"]
    assert batch["transferCount"] == 6  # not f-broken: its call rolled back
    assert (await gql("query { transfer(transferId: \"f-broken\") { transferId } }"))["transfer"] is None
    assert len(await _audit_entries("recordTransfers")) == 6


@pytest.mark.parametrize("size", [recording.GROUP_CALL_LIMIT + 1])
async def test_large_calls_are_written_alone(gql, size):
    groups = recording._groups()
    before = groups.calls
    answer = await _record(gql, [transfer(f"l-{i}") for i in range(size)])
    assert answer["recorded"] == size
    assert groups.calls == before
