"""Group commit of small recordTransfers calls (app/batches/recording.py, app/db/group_commit.py): concurrent
calls share a transaction, and every call still gets exactly the outcomes, errors and audit entry it would get alone."""
from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from tortoise import Tortoise

from app import audit
from app.auth import Principal, Role
from app.batches import recording
from app.batches.transfers import TransferRequest
from app.db import group_commit
from tests.support.transfers import BATCH, RECORD, transfer

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
    groups_before, calls_before = groups.groups, groups.items
    # Every call is sent at once: single transfers, a retry of one of them (same content: DUPLICATE), a clash
    # (same id, other content: TRANSFER_CONFLICT), and a call whose second transfer is bad.
    calls = [[transfer(f"g-{i}", payer=f"dfsp-{i % 4}", payee="hub-b", amount="1.25")] for i in range(CALLS - 3)]
    calls.append([transfer("g-0", payer="dfsp-0", payee="hub-b", amount="1.25")])
    calls.append([transfer("g-1", payer="dfsp-1", payee="hub-b", amount="9.99")])
    calls.append([transfer("g-extra", payer="dfsp-9", payee="hub-b", amount="2"),
                  transfer("g-bad", payer="dfsp-9", payee="hub-b", amount="2.001")])
    answers = await asyncio.gather(*(_record(gql, c) for c in calls))

    grouped = groups.groups - groups_before
    assert groups.items - calls_before == CALLS
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

    engine = Principal("clearing-engine", frozenset({Role.INGEST}))
    # A call whose audit entry cannot be written (its detail is no JSON) fails its group's transaction.
    broken = audit.Command(engine, "recordTransfers", "1 transfer(s)", {"unwritable": object()})
    calls = [recording.record_transfers([_request(f"f-{i}")], engine) for i in range(6)]
    calls.insert(3, recording._groups().submit(recording._Call([_request("f-broken")], broken)))
    outcomes = await asyncio.gather(*calls, return_exceptions=True)

    assert isinstance(outcomes[3], TypeError)
    good = [o for i, o in enumerate(outcomes) if i != 3]
    assert all(isinstance(o, recording.RecordingResult) and o.count("RECORDED") == 1 for o in good), outcomes
    batch = (await gql(BATCH, {"ref": {"transferId": "f-0"}}))["batch"]
    assert batch["transferCount"] == 6  # not f-broken: its call rolled back
    assert (await gql("query { transfer(transferId: \"f-broken\") { transferId } }"))["transfer"] is None
    assert len(await _audit_entries("recordTransfers")) == 6


@pytest.mark.parametrize("size", [recording.GROUP_CALL_LIMIT + 1])
async def test_large_calls_are_written_alone(gql, size):
    groups = recording._groups()
    before = groups.items
    answer = await _record(gql, [transfer(f"l-{i}") for i in range(size)])
    assert answer["recorded"] == size
    assert groups.items == before


# -- grants: prepareTransfer and commitTransfer share transactions too -----------------------------------

async def test_concurrent_commits_share_transactions_and_answer_each_alone(gql):
    from tests.support.grants import COMMIT, create_grant, grant, prepare, reconcile, value

    g = await create_grant(gql, debit="1000.00")
    ids = [f"c-{i}" for i in range(20)]
    await asyncio.gather(*(prepare(gql, t, "2.50", g["id"]) for t in [*ids, "c-big"]))
    writer = group_commit.find("commitTransfer")
    groups_before, items_before = (writer.groups, writer.items) if writer else (0, 0)

    async def commit(transfer_id, delivered=None):
        return (await gql(COMMIT, {"id": transfer_id, "delivered": delivered}, role="ingest"))["commitTransfer"]

    calls = [commit(t) for t in ids]
    calls += [commit("c-0"), commit("c-missing"), commit("c-big", delivered="9.99")]
    answers = await asyncio.gather(*calls)

    writer = group_commit.find("commitTransfer")
    assert writer is not None and writer.items - items_before == len(calls)
    assert writer.groups - groups_before < len(calls), "the concurrent commits should have shared transactions"
    committed = [a["preparedTransfer"] for a in answers[:20]]
    assert all(p["state"] == "COMMITTED" and p["transfer"]["batch"] for p in committed)
    # The retry of c-0 answers its committed state, whichever of the two calls came first.
    assert answers[20]["preparedTransfer"]["state"] == "COMMITTED"
    assert [e["code"] for e in answers[21]["userErrors"]] == ["NOT_FOUND"]
    assert [e["code"] for e in answers[22]["userErrors"]] == ["AMOUNT_EXCEEDS_RESERVED"]
    batch = (await gql(BATCH, {"ref": {"transferId": "c-5"}}))["batch"]
    assert batch["transferCount"] == 20  # each filed once
    assert value((await grant(gql, g["id"]))["spentDebitAmount"]) == "52.50"  # c-big is still reserved
    assert (await reconcile(gql, g["id"]))["consistent"]
    entries = await _audit_entries("commitTransfer")
    assert Counter(e["outcome"] for e in entries) == Counter(OK=21, REFUSED=2)


async def test_a_group_that_fails_after_writing_is_written_again_one_by_one(gql):
    """A failure after an item wrote (Dirty) rolls the whole group back; every item is then written alone, and
    only the failing one fails."""
    from tortoise.transactions import in_transaction

    async def write_group(items: list[str]) -> list[str]:
        async with in_transaction() as conn:
            await audit.insert(conn, [audit.Command(None, "groupTest", item).entry() for item in items])
            if "poison" in items:
                raise group_commit.Dirty(RuntimeError("poison wrote, then failed"))
        return items

    writer = group_commit.GroupWriter("groupTest", write_group, limit=100)
    names = [f"item-{i}" for i in range(8)]
    results = await asyncio.gather(*(writer.submit(n) for n in [*names[:4], "poison", *names[4:]]),
                                   return_exceptions=True)
    assert isinstance(results[4], RuntimeError) and str(results[4]) == "poison wrote, then failed"
    assert [r for i, r in enumerate(results) if i != 4] == names
    assert writer.items == 9 and writer.groups < 9  # grouped, then written again one by one
    conn = Tortoise.get_connection("default")
    rows = await conn.execute_query_dict("SELECT target FROM audit_entry WHERE operation = 'groupTest'")
    assert sorted(r["target"] for r in rows) == sorted(names)


async def test_prepares_and_commits_over_several_grants_at_once_keep_every_grant_exact(gql):
    """Groups mixing grants, in any arrival order, on both writers at once: every call answered, every grant
    reconciles (on PostgreSQL the groups lock their grants in id order, so they never deadlock)."""
    from tests.support.grants import COMMIT, PREPARE, create_grant, grant, reconcile, value

    grants = [(await create_grant(gql, payer=f"dfsp-{i}", debit="1000.00"))["id"] for i in range(5)]

    async def prepare_then_commit(n: int) -> None:
        k = (n * 7) % len(grants)  # arrival order crosses the grants' id order
        data = {"transferId": f"m-{n}", "payerId": f"dfsp-{k}", "payeeId": "hub", "amount": "1.00",
                "currency": "USD", "grantId": grants[k]}
        prepared = (await gql(PREPARE, {"input": data}, role="ingest"))["prepareTransfer"]
        assert prepared["userErrors"] == [], prepared
        committed = (await gql(COMMIT, {"id": f"m-{n}"}, role="ingest"))["commitTransfer"]
        assert committed["userErrors"] == [], committed

    await asyncio.gather(*(prepare_then_commit(n) for n in range(40)))
    for grant_id in grants:
        assert value((await grant(gql, grant_id))["spentDebitAmount"]) == "8.00"
        assert (await reconcile(gql, grant_id))["consistent"]


def _sample(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def test_metrics_count_transfers_operations_and_group_sizes(gql):
    names = ('settlegraph_transfers_total{outcome="RECORDED"}', 'settlegraph_transfers_total{outcome="REJECTED"}',
             'settlegraph_graphql_operation_seconds_count{operation_type="mutation"}',
             'settlegraph_group_commit_size_count{writer="recordTransfers"}')
    before = (await gql.http.get("/metrics")).text
    await asyncio.gather(*(_record(gql, [transfer(f"x-{i}"), transfer(f"x-bad-{i}", amount="0")]) for i in range(5)))
    after = (await gql.http.get("/metrics")).text
    recorded, rejected, mutations, groups = (_sample(after, n) - _sample(before, n) for n in names)
    assert (recorded, rejected, mutations) == (5, 5, 5)
    assert 1 <= groups <= 5
