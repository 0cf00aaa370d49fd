"""Settlement (SPEC §5-§7): requestSettlement, cancel, settle with four-eyes, the ledger, and the scenarios of
the source discussion and of the Mojaloop settlement tests. Invariants are checked after every scenario."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.support.matrices import (
    CANCEL,
    CLOSE,
    CREATE_STATIC,
    DISPUTE,
    POSITIONS,
    REQUEST,
    SETTLE,
    by_participant,
    check_invariants,
    command,
    create_matrix,
    create_model,
    matrix,
    net_sum,
    rows,
)
from tests.support.transfers import BATCH, record, transfer

W1 = "2026-03-02T14:05:10+00:00"
W2 = "2026-03-02T14:06:20+00:00"
W3 = "2026-03-02T14:07:30+00:00"


@pytest.fixture
def four_eyes_off(server) -> Iterator[None]:
    """SETTLEGRAPH_FOUR_EYES=false for one test: the GraphQL view reads its settings per request."""
    view = next(route.endpoint for route in server.app.routes if getattr(route, "path", "") == "/graphql"
                and hasattr(route.endpoint, "settings"))
    original = view.settings
    view.settings = dataclasses.replace(original, four_eyes=False)
    try:
        yield
    finally:
        view.settings = original


async def three_windows(gql) -> list[str]:
    """Three 1-minute batches of model RTGS with transfers between a, b and c; their ids."""
    await create_model(gql, "RTGS", 60)
    out = await record(gql, transfer("t1", "a", "b", "10.00", committed_at=W1, settlementModel="RTGS"),
                       transfer("t2", "b", "c", "4.00", committed_at=W2, settlementModel="RTGS"),
                       transfer("t3", "c", "a", "1.50", committed_at=W3, settlementModel="RTGS"))
    return [r["batch"]["id"] for r in out["results"]]


async def batch(gql, **ref) -> dict:
    return (await gql(BATCH, {"ref": ref}))["batch"]


async def test_request_then_settle_by_another_user(gql):
    ids = await three_windows(gql)
    m = await create_matrix(gql)
    requested = await command(gql, REQUEST, "requestSettlement", id=m["id"], c=m["checksum"])
    assert requested["userErrors"] == [] and requested["skipped"] == []
    assert requested["matrix"]["status"] == "AWAITING_SETTLEMENT"
    assert requested["matrix"]["requestedBy"] == "oscar-operator"
    assert {b["node"]["status"] for b in requested["matrix"]["batches"]["edges"]} == {"AWAITING_SETTLEMENT"}
    first = await batch(gql, id=ids[0])
    assert [(h["from"], h["to"]) for h in first["history"]] == [
        (None, "OPEN"), ("OPEN", "CLOSED"), ("CLOSED", "AWAITING_SETTLEMENT")]
    owner = await gql("""query($r: BatchRef!) { batch(ref: $r) { ownerMatrix { id status }
        history { to matrix { id } } } }""", {"r": {"id": ids[0]}})
    assert owner["batch"]["ownerMatrix"] == {"id": m["id"], "status": "AWAITING_SETTLEMENT"}
    assert owner["batch"]["history"][-1]["matrix"] == {"id": m["id"]}

    # A transfer for a window of the period now opens a new batch: the frozen matrix does not take it.
    late = await record(gql, transfer("t4", "a", "c", "2.00", committed_at=W1, settlementModel="RTGS"))
    assert late["results"][0]["batch"]["sequence"] == 2
    assert (await matrix(gql, m["id"]))["batchCount"] == 3

    settled = await command(gql, SETTLE, "settleMatrix", role="settler", id=m["id"])
    assert settled["userErrors"] == []
    report = settled["report"]
    assert report["requestedBy"] == "oscar-operator" and report["settledBy"] == "sam-settler"
    assert by_participant(report["participants"]) == {("a", "USD"): "-8.50", ("b", "USD"): "6.00",
                                                      ("c", "USD"): "2.50"}
    assert net_sum(report["participants"]) == 0
    assert sorted(b["id"] for b in report["batches"]) == sorted(ids, key=int)
    assert {b["status"] for b in report["batches"]} == {"SETTLED"}
    assert settled["matrix"]["status"] == "SETTLED" and settled["matrix"]["settleable"] == []
    again = await matrix(gql, m["id"])
    assert again["settlement"]["id"] == report["id"]

    positions = {p["id"]: p["positions"] for p in (await gql(POSITIONS))["participants"]}
    assert positions["a"] == [{"currency": "USD", "unsettledNet": "-2.00", "settledNet": "-8.50",
                               "settlementBalance": "-8.50"}]
    assert positions["c"] == [{"currency": "USD", "unsettledNet": "2.00", "settledNet": "2.50",
                               "settlementBalance": "2.50"}]
    lines = await rows("SELECT l.account, l.debit, l.credit FROM journal_line l JOIN journal_entry e "
                       "ON e.id = l.entry_id WHERE e.participant_id = 'a' ORDER BY l.account")
    assert [(r["account"], int(r["debit"]), int(r["credit"])) for r in lines] == [
        ("POSITION", 0, 850), ("SETTLEMENT", 850, 0)]

    # No second settlement.
    twice = await command(gql, SETTLE, "settleMatrix", role="settler2", id=m["id"])
    assert twice["userErrors"][0]["code"] == "INVALID_TRANSITION" and twice["report"] is None
    await check_invariants(gql)


async def test_four_eyes(gql):
    await three_windows(gql)
    m = await create_matrix(gql)
    opened = await command(gql, SETTLE, "settleMatrix", role="settler", id=m["id"])
    assert opened["userErrors"][0]["code"] == "INVALID_TRANSITION"
    assert "OPEN" in opened["userErrors"][0]["message"]
    await command(gql, REQUEST, "requestSettlement", role="admin", id=m["id"])
    same = await command(gql, SETTLE, "settleMatrix", role="admin", id=m["id"])
    assert same["userErrors"][0]["code"] == "FOUR_EYES"
    assert (await matrix(gql, m["id"]))["status"] == "AWAITING_SETTLEMENT"
    other = await command(gql, SETTLE, "settleMatrix", role="settler", id=m["id"])
    assert other["userErrors"] == [] and other["report"]["requestedBy"] == "alice-admin"
    await check_invariants(gql)


async def test_four_eyes_off_settles_an_open_matrix_in_one_step(gql, four_eyes_off):
    ids = await three_windows(gql)
    await gql("""mutation { disputeBatch(ref: {transferId: "t3"}) { batch { status } } }""", role="operator")
    m = await create_matrix(gql)
    settled = await command(gql, SETTLE, "settleMatrix", role="admin", id=m["id"], c=m["checksum"])
    assert settled["userErrors"] == []
    assert settled["report"]["requestedBy"] == "alice-admin" == settled["report"]["settledBy"]
    assert sorted(b["id"] for b in settled["report"]["batches"]) == ids[:2]
    first = await batch(gql, id=ids[0])
    assert [h["to"] for h in first["history"]] == ["OPEN", "CLOSED", "AWAITING_SETTLEMENT", "SETTLED"]
    assert (await batch(gql, id=ids[2]))["status"] == "IN_DISPUTE"
    empty = await create_matrix(gql, start="2026-03-02T10:00:00+00:00", end="2026-03-02T11:00:00+00:00")
    refused = await command(gql, SETTLE, "settleMatrix", role="admin", id=empty["id"])
    assert refused["userErrors"][0]["code"] == "EMPTY_MATRIX"
    await check_invariants(gql)


async def test_expected_checksum_detects_any_change(gql):
    await three_windows(gql)
    m = await create_matrix(gql)
    seen = m["checksum"]
    await record(gql, transfer("t9", "a", "b", "0.01", committed_at=W3, settlementModel="RTGS"))
    moved = await command(gql, REQUEST, "requestSettlement", id=m["id"], c=seen)
    assert moved["userErrors"][0]["code"] == "MATRIX_CHANGED" and moved["matrix"] is None
    now = await matrix(gql, m["id"])
    assert now["status"] == "OPEN"
    assert {b["node"]["status"] for b in now["batches"]["edges"]} == {"OPEN"}  # nothing was written
    # A status change alone changes the checksum too.
    await gql("""mutation { closeBatch(ref: {transferId: "t1"}) { batch { status } } }""", role="operator")
    closed = await matrix(gql, m["id"])
    assert closed["checksum"] != now["checksum"]
    ok = await command(gql, REQUEST, "requestSettlement", id=m["id"], c=closed["checksum"])
    assert ok["userErrors"] == []
    frozen = await matrix(gql, m["id"])
    wrong = await command(gql, SETTLE, "settleMatrix", role="settler", id=m["id"], c=closed["checksum"])
    assert wrong["userErrors"][0]["code"] == "MATRIX_CHANGED"
    right = await command(gql, SETTLE, "settleMatrix", role="settler", id=m["id"], c=frozen["checksum"])
    assert right["userErrors"] == []
    await check_invariants(gql)


async def test_empty_matrix_cannot_be_requested(gql):
    await create_model(gql, "RTGS", 60)
    m = await create_matrix(gql)
    refused = await command(gql, REQUEST, "requestSettlement", id=m["id"])
    assert refused["userErrors"][0]["code"] == "EMPTY_MATRIX"
    static = (await gql(CREATE_STATIC, {"b": []}, role="operator"))["createStaticMatrix"]["matrix"]
    refused = await command(gql, REQUEST, "requestSettlement", id=static["id"])
    assert refused["userErrors"][0]["code"] == "EMPTY_MATRIX"
    missing = await command(gql, REQUEST, "requestSettlement", id="999")
    assert missing["userErrors"][0]["code"] == "NOT_FOUND"


async def test_dispute_one_batch_and_settle_the_rest(gql):
    ids = await three_windows(gql)
    m = await create_matrix(gql)
    await gql("""mutation($r: BatchRef!) { disputeBatch(ref: $r, reason: "DFSP b disputes") { batch { status } } }""",
              {"r": {"id": ids[1]}}, role="operator")
    requested = await command(gql, REQUEST, "requestSettlement", id=m["id"])
    assert [(s["batch"]["id"], s["batch"]["status"]) for s in requested["skipped"]] == [(ids[1], "IN_DISPUTE")]
    assert "IN_DISPUTE" in requested["skipped"][0]["reason"]
    settled = await command(gql, SETTLE, "settleMatrix", role="settler", id=m["id"])
    assert sorted(b["id"] for b in settled["report"]["batches"]) == [ids[0], ids[2]]
    assert by_participant(settled["report"]["participants"]) == {("a", "USD"): "-8.50", ("b", "USD"): "10.00",
                                                                  ("c", "USD"): "-1.50"}
    assert (await batch(gql, id=ids[1]))["status"] == "IN_DISPUTE"
    by_status = {(s["status"], s["batchCount"]) for s in settled["matrix"]["byStatus"]}
    assert by_status == {("SETTLED", 2), ("IN_DISPUTE", 1)}
    await check_invariants(gql)


async def test_dispute_by_transfer_id_and_later_transfers_go_to_the_next_sequence(gql):
    await create_model(gql, "RTGS", 60)
    await record(gql, transfer("t1", "a", "b", "5.00", committed_at=W1, settlementModel="RTGS"))
    disputed = await gql("""mutation { disputeBatch(ref: {transferId: "t1"}, reason: "fraud check") {
        batch { id status sequence history { to reason actor } } } }""", role="operator")
    first = disputed["disputeBatch"]["batch"]
    assert first["status"] == "IN_DISPUTE" and first["history"][-1]["reason"] == "fraud check"
    later = await record(gql, transfer("t2", "b", "a", "1.00", committed_at=W1, settlementModel="RTGS"))
    second = later["results"][0]["batch"]
    assert second["sequence"] == 2 and second["status"] == "OPEN" and second["name"].endswith(".002")
    m = await create_matrix(gql)
    assert m["batchCount"] == 2
    assert by_participant(m["settleable"]) == {("a", "USD"): "1.00", ("b", "USD"): "-1.00"}
    requested = await command(gql, REQUEST, "requestSettlement", id=m["id"])
    assert [s["batch"]["id"] for s in requested["skipped"]] == [first["id"]]
    settled = await command(gql, SETTLE, "settleMatrix", role="settler", id=m["id"])
    assert [b["id"] for b in settled["report"]["batches"]] == [second["id"]]
    await check_invariants(gql)


async def test_refund_closes_a_disputed_batch_which_a_second_matrix_settles(gql):
    ids = await three_windows(gql)
    await gql("""mutation { disputeBatch(ref: {transferId: "t1"}) { batch { status } } }""", role="operator")
    first = await create_matrix(gql)
    await command(gql, REQUEST, "requestSettlement", id=first["id"])
    await command(gql, SETTLE, "settleMatrix", role="settler", id=first["id"])
    assert (await batch(gql, id=ids[0]))["status"] == "IN_DISPUTE"

    refund = await record(gql, transfer("r1", "b", "a", "10.00", committed_at="2026-03-02T16:00:00+00:00",
                                        settlementModel="RTGS", refundOf="t1"))
    assert refund["results"][0]["batch"]["id"] == ids[0]
    refunded = await batch(gql, id=ids[0])
    assert refunded["status"] == "CLOSED"
    assert refunded["history"][-1] == {"from": "IN_DISPUTE", "to": "CLOSED", "actor": "clearing-engine",
                                       "reason": "refund"}
    assert {a["net"] for a in refunded["accounts"]} == {"0.00"}

    # The first matrix is settled and keeps its report; a second one over the same period settles the batch.
    assert (await matrix(gql, first["id"]))["status"] == "SETTLED"
    second = await create_matrix(gql)
    assert {(s["status"], s["batchCount"]) for s in second["byStatus"]} == {("SETTLED", 2), ("CLOSED", 1)}
    await command(gql, REQUEST, "requestSettlement", id=second["id"])
    settled = await command(gql, SETTLE, "settleMatrix", role="settler", id=second["id"])
    assert [b["id"] for b in settled["report"]["batches"]] == [ids[0]]
    assert {p["net"] for p in settled["report"]["participants"]} == {"0.00"}  # zero nets settle normally
    await check_invariants(gql)


async def test_settled_batch_shown_in_a_later_matrix_but_never_settled_twice(gql):
    ids = await three_windows(gql)
    static = (await gql(CREATE_STATIC, {"b": ids[:2]}, role="operator"))["createStaticMatrix"]["matrix"]
    await command(gql, REQUEST, "requestSettlement", id=static["id"])
    await command(gql, SETTLE, "settleMatrix", role="settler", id=static["id"])
    later = await create_matrix(gql)
    assert later["batchCount"] == 3
    assert {(s["status"], s["batchCount"]) for s in later["byStatus"]} == {("SETTLED", 2), ("OPEN", 1)}
    assert by_participant(later["settleable"]) == {("a", "USD"): "1.50", ("c", "USD"): "-1.50"}
    requested = await command(gql, REQUEST, "requestSettlement", id=later["id"])
    assert sorted(s["batch"]["id"] for s in requested["skipped"]) == ids[:2]
    assert all("SETTLED already" in s["reason"] for s in requested["skipped"])
    settled = await command(gql, SETTLE, "settleMatrix", role="settler", id=later["id"])
    assert [b["id"] for b in settled["report"]["batches"]] == [ids[2]]
    only_settled = (await gql(CREATE_STATIC, {"b": ids}, role="operator"))["createStaticMatrix"]["matrix"]
    assert only_settled["settleable"] == []
    refused = await command(gql, REQUEST, "requestSettlement", id=only_settled["id"])
    assert refused["userErrors"][0]["code"] == "EMPTY_MATRIX"
    await check_invariants(gql)


async def test_cancel_and_request_again(gql):
    ids = await three_windows(gql)
    m = await create_matrix(gql)
    await command(gql, REQUEST, "requestSettlement", id=m["id"])
    not_yours = await gql.raw(CANCEL, {"id": m["id"]}, role="operator")
    assert not_yours["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    cancelled = await command(gql, CANCEL, "cancelSettlement", role="settler", id=m["id"])
    assert cancelled["userErrors"] == [] and cancelled["matrix"]["status"] == "OPEN"
    assert cancelled["matrix"]["requestedBy"] is None
    assert {b["node"]["status"] for b in cancelled["matrix"]["batches"]["edges"]} == {"CLOSED"}
    history = (await batch(gql, id=ids[0]))["history"]
    assert [(h["from"], h["to"]) for h in history][-1] == ("AWAITING_SETTLEMENT", "CLOSED")
    again = await command(gql, CANCEL, "cancelSettlement", role="settler", id=m["id"])
    assert again["userErrors"][0]["code"] == "INVALID_TRANSITION"

    # OPEN again, the DYNAMIC matrix follows its criteria: a batch created since joins it.
    await record(gql, transfer("t5", "b", "a", "3.00", committed_at=W1, settlementModel="RTGS"))
    reopened = await matrix(gql, m["id"])
    assert reopened["batchCount"] == 4
    requested = await command(gql, REQUEST, "requestSettlement", id=m["id"], c=reopened["checksum"])
    assert requested["userErrors"] == [] and requested["skipped"] == []
    settled = await command(gql, SETTLE, "settleMatrix", role="settler", id=m["id"])
    assert len(settled["report"]["batches"]) == 4
    # Each batch's whole history, in order: the first lock was given up by the cancel and became the batch's own
    # history; the second lock and the settle are kept once for the matrix's batches (one row each), and the batch
    # created after the cancel (never locked before) shows them too.
    lock, unlock = f"settlement requested in matrix {m['id']}", f"settlement of matrix {m['id']} cancelled"
    settle = f"settled in matrix {m['id']}"
    histories = await gql("""query($id: ID!) { matrix(id: $id) { batches { edges { node { id
        history { from to actor reason matrix { id } } } } } } }""", {"id": m["id"]})
    seen = {e["node"]["id"]: [(h["from"], h["to"], h["actor"], h["reason"], (h["matrix"] or {}).get("id"))
                              for h in e["node"]["history"]] for e in histories["matrix"]["batches"]["edges"]}
    assert len(seen) == 4
    first_lock = [(None, "OPEN", "clearing-engine", "created", None),
                  ("OPEN", "CLOSED", "oscar-operator", lock, m["id"]),
                  ("CLOSED", "AWAITING_SETTLEMENT", "oscar-operator", lock, m["id"]),
                  ("AWAITING_SETTLEMENT", "CLOSED", "sam-settler", unlock, m["id"])]
    second_lock = [("CLOSED", "AWAITING_SETTLEMENT", "oscar-operator", lock, m["id"]),
                   ("AWAITING_SETTLEMENT", "SETTLED", "sam-settler", settle, m["id"])]
    for batch_id in ids:
        assert seen[batch_id] == first_lock + second_lock
    (created,) = set(seen) - set(ids)
    assert seen[created] == first_lock[:2] + second_lock
    owned = await rows(f"SELECT from_status, to_status FROM owned_status_change WHERE matrix_id = {int(m['id'])} "
                       "ORDER BY id")
    assert [(r["from_status"], r["to_status"]) for r in owned] == [("CLOSED", "AWAITING_SETTLEMENT"),
                                                                   ("AWAITING_SETTLEMENT", "SETTLED")]
    await check_invariants(gql)


async def test_close_and_dispute_matrix_report_skipped_batches(gql):
    ids = await three_windows(gql)
    await gql("""mutation($r: BatchRef!) { disputeBatch(ref: $r) { batch { status } } }""", {"r": {"id": ids[2]}},
              role="operator")
    m = await create_matrix(gql)
    closed = await command(gql, CLOSE, "closeMatrix", id=m["id"])
    assert [(s["batch"]["id"], s["batch"]["status"]) for s in closed["skipped"]] == [(ids[2], "IN_DISPUTE")]
    assert {(s["status"], s["batchCount"]) for s in closed["matrix"]["byStatus"]} == {("CLOSED", 2),
                                                                                     ("IN_DISPUTE", 1)}
    disputed = await command(gql, DISPUTE, "disputeMatrix", id=m["id"], r="whole hour disputed")
    assert disputed["skipped"] == []
    assert {(s["status"], s["batchCount"]) for s in disputed["matrix"]["byStatus"]} == {("IN_DISPUTE", 3)}
    assert disputed["matrix"]["settleable"] == []
    assert (await batch(gql, id=ids[0]))["history"][-1]["reason"] == "whole hour disputed"
    await check_invariants(gql)


async def test_a_batch_locked_by_one_matrix_is_never_settled_by_another(gql):
    ids = await three_windows(gql)
    one = (await gql(CREATE_STATIC, {"b": ids[:2]}, role="operator"))["createStaticMatrix"]["matrix"]
    two = (await gql(CREATE_STATIC, {"b": ids[1:]}, role="operator"))["createStaticMatrix"]["matrix"]
    await command(gql, REQUEST, "requestSettlement", id=one["id"])
    seen = await matrix(gql, two["id"])
    assert seen["batchCount"] == 2
    assert by_participant(seen["settleable"]) == {("a", "USD"): "1.50", ("c", "USD"): "-1.50"}
    requested = await command(gql, REQUEST, "requestSettlement", id=two["id"])
    assert [(s["batch"]["id"], s["reason"]) for s in requested["skipped"]] == [
        (ids[1], f"AWAITING_SETTLEMENT: locked by matrix {one['id']}")]
    settled_two = await command(gql, SETTLE, "settleMatrix", role="settler", id=two["id"])
    assert [b["id"] for b in settled_two["report"]["batches"]] == [ids[2]]
    settled_one = await command(gql, SETTLE, "settleMatrix", role="settler", id=one["id"])
    assert [b["id"] for b in settled_one["report"]["batches"]] == ids[:2]
    await check_invariants(gql)


async def test_totals_per_status_and_batches_in_no_matrix(gql):
    ids = await three_windows(gql)
    await record(gql, transfer("e1", "a", "b", "7.00", "EUR", committed_at=W1, settlementModel="RTGS"))
    m = await create_matrix(gql, currencies=["USD"])
    await command(gql, REQUEST, "requestSettlement", id=m["id"])
    await command(gql, SETTLE, "settleMatrix", role="settler", id=m["id"])
    outside = await gql("""{ batches(filter: {inAnyMatrix: false}) { edges { node { currency status } } } }""")
    assert [e["node"] for e in outside["batches"]["edges"]] == [{"currency": "EUR", "status": "OPEN"}]
    positions = {p["id"]: {x["currency"]: x for x in p["positions"]} for p in (await gql(POSITIONS))["participants"]}
    assert positions["a"]["EUR"]["unsettledNet"] == "-7.00" and positions["a"]["EUR"]["settledNet"] == "0.00"
    assert positions["a"]["USD"]["settledNet"] == "-8.50" and positions["a"]["USD"]["unsettledNet"] == "0.00"
    total = sum((Decimal(x["settlementBalance"]) for p in positions.values() for x in p.values()), Decimal(0))
    assert total == 0
    assert len(ids) == 3
    await check_invariants(gql)


async def many_batches(gql, count: int) -> list[str]:
    await create_model(gql, "RTGS", 60)
    transfers = [transfer(f"t{i}", "a" if i % 2 else "b", "c", f"{i + 1}.00",
                          committed_at=f"2026-03-02T14:{i:02d}:00+00:00", settlementModel="RTGS")
                 for i in range(count)]
    out = await record(gql, *transfers)
    return [r["batch"]["id"] for r in out["results"]]


async def test_overlapping_matrices_racing_to_lock_have_one_winner_per_batch(gql):
    import asyncio

    ids = await many_batches(gql, 40)
    dynamic = [await create_matrix(gql) for _ in range(3)]
    statics = [(await gql(CREATE_STATIC, {"b": part}, role="operator"))["createStaticMatrix"]["matrix"]
               for part in (ids[::2], ids[5:30], ids[::3])]
    contenders = [m["id"] for m in dynamic + statics]
    answers = await asyncio.gather(*(gql(REQUEST, {"id": i}, role="operator") for i in contenders))
    locked_by: dict[str, str] = {}
    for matrix_id, answer in zip(contenders, answers, strict=True):
        payload = answer["requestSettlement"]
        if payload["userErrors"]:
            assert payload["userErrors"][0]["code"] == "EMPTY_MATRIX"  # everything went to the others
            continue
        for s in payload["skipped"]:
            assert "locked by matrix" in s["reason"] and not s["reason"].endswith(f"matrix {matrix_id}")
    owners = await rows("SELECT id, owner_matrix_id, status FROM batch ORDER BY id")
    assert {r["status"] for r in owners} == {"AWAITING_SETTLEMENT"}
    for r in owners:
        locked_by[str(r["id"])] = str(r["owner_matrix_id"])
    assert set(locked_by) == set(ids) and set(locked_by.values()) <= set(contenders)
    # Each batch's history shows exactly one lock.
    locks = await rows("SELECT batch_id, COUNT(*) AS n FROM batch_history WHERE to_status = "
                       "'AWAITING_SETTLEMENT' GROUP BY batch_id")
    assert {int(r["n"]) for r in locks} == {1} and len(locks) == len(ids)
    # Settling every contender settles every batch once, each by its owner.
    settled_ids: list[str] = []
    for matrix_id in contenders:
        answer = await command(gql, SETTLE, "settleMatrix", role="settler", id=matrix_id)
        if answer["userErrors"]:
            assert answer["userErrors"][0]["code"] in {"INVALID_TRANSITION"}  # never requested: it got nothing
            continue
        for b in answer["report"]["batches"]:
            assert locked_by[b["id"]] == matrix_id
            settled_ids.append(b["id"])
    assert sorted(settled_ids, key=int) == ids
    await check_invariants(gql)


async def test_racing_one_step_settlements_settle_each_batch_once(gql, four_eyes_off):
    import asyncio

    ids = await many_batches(gql, 30)
    contenders = [(await create_matrix(gql))["id"] for _ in range(4)]
    contenders.append((await gql(CREATE_STATIC, {"b": ids[10:20]}, role="operator"))["createStaticMatrix"]
                      ["matrix"]["id"])
    answers = await asyncio.gather(*(gql(SETTLE, {"id": i}, role="settler") for i in contenders))
    settled: list[str] = []
    for answer in answers:
        payload = answer["settleMatrix"]
        if payload["userErrors"]:
            assert payload["userErrors"][0]["code"] == "EMPTY_MATRIX"
            continue
        settled += [b["id"] for b in payload["report"]["batches"]]
    assert sorted(settled, key=int) == ids
    await check_invariants(gql)


async def test_matrix_wide_commands_over_many_batches(gql, four_eyes_off):
    await create_model(gql, "SECONDS", 1)
    transfers = [transfer(f"s{i}", f"p{i % 7}", f"p{(i + 3) % 7}", f"{i % 50 + 1}.00",
                          committed_at=f"2026-03-02T14:{i // 60:02d}:{i % 60:02d}+00:00", settlementModel="SECONDS")
                 for i in range(450)]
    await record(gql, *transfers)
    m = await create_matrix(gql, "SECONDS", unit="MINUTE", start="2026-03-02T14:00:00+00:00",
                            end="2026-03-02T14:10:00+00:00")
    assert m["batchCount"] == 450
    closed = await command(gql, CLOSE, "closeMatrix", id=m["id"])
    assert closed["matrix"]["byStatus"][0]["batchCount"] == 450
    await check_invariants(gql)
    settled = await command(gql, SETTLE, "settleMatrix", role="settler", id=m["id"], c=closed["matrix"]["checksum"])
    assert settled["userErrors"] == [] and len(settled["report"]["batches"]) == 450
    assert net_sum(settled["report"]["participants"]) == 0
    await check_invariants(gql)


async def test_frozen_matrices_find_the_batches_they_locked(gql):
    """A DYNAMIC matrix whose criteria take CLOSED batches only keeps the batches it locked (now AWAITING_SETTLEMENT,
    then SETTLED) as members, found by their owner within its period; a STATIC matrix by its list. Neither takes the
    other's batches."""
    ids = await three_windows(gql)
    first_two = await command(gql, CREATE_STATIC, "createStaticMatrix", b=ids[:2])
    assert (await command(gql, CLOSE, "closeMatrix", id=first_two["matrix"]["id"]))["userErrors"] == []
    closed_only = await create_matrix(gql, batchStatuses=["CLOSED"])
    assert closed_only["batchCount"] == 2
    third = (await command(gql, CREATE_STATIC, "createStaticMatrix", b=ids[2:]))["matrix"]
    assert (await command(gql, REQUEST, "requestSettlement", id=third["id"]))["userErrors"] == []

    checksum = (await matrix(gql, closed_only["id"]))["checksum"]  # the hour's rollup moved (the third batch)
    requested = await command(gql, REQUEST, "requestSettlement", id=closed_only["id"], c=checksum)
    assert requested["userErrors"] == [] and requested["skipped"] == []
    held = requested["matrix"]
    assert held["batchCount"] == 2 and held["batches"]["totalCount"] == 2
    assert {(e["node"]["id"], e["node"]["status"]) for e in held["batches"]["edges"]} == {
        (ids[0], "AWAITING_SETTLEMENT"), (ids[1], "AWAITING_SETTLEMENT")}
    assert held["settleable"] == closed_only["settleable"]

    settled = await command(gql, SETTLE, "settleMatrix", role="settler", id=closed_only["id"])
    assert settled["userErrors"] == []
    assert sorted(b["id"] for b in settled["report"]["batches"]) == sorted(ids[:2], key=int)
    assert by_participant(settled["report"]["participants"]) == {("a", "USD"): "-10.00", ("b", "USD"): "6.00",
                                                                 ("c", "USD"): "4.00"}
    after = await matrix(gql, closed_only["id"])
    assert after["batchCount"] == 2 and {s["status"] for s in after["byStatus"]} == {"SETTLED"}
    assert [b["id"] for b in after["settlement"]["batches"]] == sorted(ids[:2], key=int)

    other = await command(gql, SETTLE, "settleMatrix", role="settler", id=third["id"])
    assert other["userErrors"] == [] and [b["id"] for b in other["report"]["batches"]] == [ids[2]]
    assert by_participant(other["report"]["participants"]) == {("a", "USD"): "1.50", ("c", "USD"): "-1.50"}
    await check_invariants(gql)
