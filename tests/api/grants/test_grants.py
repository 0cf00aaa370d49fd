"""Payment grants through the real server (SPEC §9): creation, limits, commit and abort, retries, access."""
from __future__ import annotations

import pytest

from tests.support.grants import (
    GRANT,
    abort,
    clock_at,
    commit,
    create_grant,
    grant,
    prepare,
    reconcile,
    value,
)

NOON = "2026-03-01T12:00"


@pytest.fixture(autouse=True)
def pinned_clock():
    with clock_at(NOON) as holder:
        yield holder


# -- creating grants ------------------------------------------------------------------------------------------

async def test_grant_with_debit_limit_reports_zero_spent_and_null_for_the_other_kind(gql):
    g = await create_grant(gql, payer="dfsp-a", payee="dfsp-b", debit="100.00")
    assert g["payerId"] == "dfsp-a" and g["payeeId"] == "dfsp-b" and g["interval"] is None
    assert g["debitAmount"] == {"value": "100.00", "currency": "USD"} and g["receiveAmount"] is None
    assert g["spentDebitAmount"] == {"value": "0.00", "currency": "USD"}
    assert g["spentReceiveAmount"] is None
    assert (await grant(gql, g["id"]))["id"] == g["id"]


async def test_grant_with_receive_limit(gql):
    g = await create_grant(gql, receive="5000", currency="JPY")
    assert g["receiveAmount"] == {"value": "5000", "currency": "JPY"} and g["debitAmount"] is None
    assert g["spentReceiveAmount"] == {"value": "0", "currency": "JPY"} and g["spentDebitAmount"] is None


async def test_both_amounts_are_refused(gql):
    error = await create_grant(gql, debit="10.00", receive="10.00", expect_error="ONLY_ONE_GRANT_AMOUNT")
    assert error["field"] == ["input", "receiveAmount"]


@pytest.mark.parametrize(("debit", "currency", "code"), [
    ("10.001", "USD", "AMOUNT_SCALE"),
    ("0", "USD", "AMOUNT_NOT_POSITIVE"),
    ("-5.00", "USD", "AMOUNT_NOT_POSITIVE"),
    ("10", "XXX", "UNKNOWN_CURRENCY"),
    ("1e3", "USD", "VALIDATION"),
])
async def test_bad_limits_are_refused(gql, debit, currency, code):
    await create_grant(gql, debit=debit, currency=currency, expect_error=code)


async def test_malformed_interval_is_refused_clearly(gql):
    error = await create_grant(gql, debit="10.00", interval="R/2026-03-01/P1D", expect_error="INVALID_INTERVAL")
    assert error["field"] == ["input", "interval"] and "offset" in error["message"]
    await create_grant(gql, debit="10.00", interval="every day", expect_error="INVALID_INTERVAL")


async def test_unlimited_grant_tracks_nothing(gql):
    g = await create_grant(gql, payer="dfsp-a")
    assert g["debitAmount"] is None and g["receiveAmount"] is None
    assert g["spentDebitAmount"] is None and g["spentReceiveAmount"] is None
    await prepare(gql, "u1", "1000000.00", g["id"])
    await prepare(gql, "u2", "7.00", g["id"], currency="EUR")
    await commit(gql, "u1")
    after = await grant(gql, g["id"])
    assert after["spentDebitAmount"] is None and after["spentAmounts"] == []


# -- access -----------------------------------------------------------------------------------------------------

async def test_roles(gql):
    create = "mutation { createGrant(input: {payerId: \"dfsp-a\"}) { grant { id } } }"
    body = await gql.raw(create, role="ingest")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    g = await create_grant(gql, debit="10.00")
    prepare_op = ("mutation($g: ID) { prepareTransfer(input: {transferId: \"r1\", payerId: \"dfsp-a\", "
                  "payeeId: \"dfsp-b\", amount: \"1.00\", currency: \"USD\", grantId: $g}) "
                  "{ preparedTransfer { state } } }")
    for role in ("operator", "viewer", "settler"):
        body = await gql.raw(prepare_op, {"g": g["id"]}, role=role)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await gql(prepare_op, {"g": g["id"]}, role="admin"))["prepareTransfer"]["preparedTransfer"]["state"] \
        == "RESERVED"
    body = await gql.raw(GRANT, {"id": g["id"]}, role=None)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    for op in ("commitTransfer(transferId: \"r1\")", "abortTransfer(transferId: \"r1\")"):
        body = await gql.raw(f"mutation {{ {op} {{ preparedTransfer {{ state }} }} }}", role="viewer")
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await gql.raw("mutation($id: ID!) { reconcileGrant(id: $id) { reconciliation { consistent } } }",
                         {"id": g["id"]}, role="ingest")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_prepare_commit_and_abort_are_audited_once_with_their_outcome(gql):
    from models.settlement import AuditEntry

    g = await create_grant(gql, payer="dfsp-a", debit="2.00")
    await prepare(gql, "a1", "1.50", g["id"])
    await prepare(gql, "a1", "1.50", g["id"])  # a retry: OK again, nothing else written
    await prepare(gql, "a2", "1.00", g["id"], expect_error="GRANT_LIMIT_EXCEEDED")
    await commit(gql, "a1")
    await abort(gql, "a1", expect_error="INVALID_TRANSITION")
    await prepare(gql, "a3", "0.50", g["id"])
    await abort(gql, "a3")
    entries = [(e.operation, e.target, e.outcome, e.detail) for e in await AuditEntry.all().order_by("id")]
    assert entries[1:] == [
        ("prepareTransfer", "a1", "OK", None),
        ("prepareTransfer", "a1", "OK", None),
        ("prepareTransfer", "a2", "REFUSED", {"codes": ["GRANT_LIMIT_EXCEEDED"]}),
        ("commitTransfer", "a1", "OK", None),
        ("abortTransfer", "a1", "REFUSED", {"codes": ["INVALID_TRANSITION"]}),
        ("prepareTransfer", "a3", "OK", None),
        ("abortTransfer", "a3", "OK", None),
    ]


# -- preparing --------------------------------------------------------------------------------------------------

async def test_only_the_grants_payer_may_spend(gql):
    g = await create_grant(gql, payer="dfsp-a", debit="100.00")
    error = await prepare(gql, "p1", "1.00", g["id"], payer="dfsp-c", expect_error="GRANT_PAYER_MISMATCH")
    assert error["field"] == ["input", "payerId"]


async def test_payee_restriction(gql):
    g = await create_grant(gql, payee="dfsp-b", debit="100.00")
    error = await prepare(gql, "p1", "1.00", g["id"], payee="dfsp-c", expect_error="GRANT_PAYEE_MISMATCH")
    assert error["field"] == ["input", "payeeId"]
    await prepare(gql, "p2", "1.00", g["id"], payee="dfsp-b")


async def test_currency_must_match_the_limit(gql):
    g = await create_grant(gql, debit="100.00")
    error = await prepare(gql, "p1", "1.00", g["id"], currency="EUR", expect_error="GRANT_CURRENCY_MISMATCH")
    assert error["field"] == ["input", "currency"]
    # an amount in the grant's currency but with too many decimals fails on the amount, not the grant
    await prepare(gql, "p2", "1.001", g["id"], expect_error="AMOUNT_SCALE")


async def test_unknown_grant_and_bad_input(gql):
    await prepare(gql, "p1", "1.00", "999", expect_error="NOT_FOUND")
    await prepare(gql, "p2", "1.00", "abc", expect_error="VALIDATION")
    await prepare(gql, "p3", "1.00", None, payee="dfsp-a", expect_error="SAME_PARTICIPANT")
    await prepare(gql, "p4", "0", None, expect_error="AMOUNT_NOT_POSITIVE")
    await prepare(gql, "p5", "1.00", None, receive="0.00", expect_error="AMOUNT_NOT_POSITIVE")
    await prepare(gql, "p6", "1.00", None, settlementModel="NOPE", expect_error="UNKNOWN_MODEL")


async def test_prepared_at_defaults_to_now_may_lie_in_the_past_not_far_in_the_future(gql):
    t = await prepare(gql, "p1", "1.00", None)
    assert t["preparedAt"] == "2026-03-01T12:00:00+00:00"
    assert (await prepare(gql, "p2", "1.00", None, at="2025-06-01T00:00"))["preparedAt"].startswith("2025-06-01")
    await prepare(gql, "p3", "1.00", None, at="2026-03-01T12:04")
    error = await prepare(gql, "p4", "1.00", None, at="2026-03-01T12:06", expect_error="VALIDATION")
    assert error["field"] == ["input", "preparedAt"]


async def test_transfer_without_grant_can_be_prepared_committed_and_aborted(gql):
    assert (await prepare(gql, "n1", "12.50", None))["grant"] is None
    c = await commit(gql, "n1")
    assert c["transfer"]["amount"] == "12.50" and c["transfer"]["batch"]["name"].startswith("DEFAULT.USD.")
    await prepare(gql, "n2", "3.00", None)
    assert (await abort(gql, "n2"))["state"] == "ABORTED"


async def test_retried_prepare_answers_the_same_reservation_and_conflicts_are_refused(gql):
    g = await create_grant(gql, debit="10.00")
    first = await prepare(gql, "p1", "6.00", g["id"])
    again = await prepare(gql, "p1", "6.00", g["id"])
    assert again["state"] == "RESERVED" and again["preparedAt"] == first["preparedAt"]
    assert value((await grant(gql, g["id"]))["spentDebitAmount"]) == "6.00"
    await prepare(gql, "p1", "7.00", g["id"], expect_error="TRANSFER_CONFLICT")
    await prepare(gql, "p1", "6.00", None, expect_error="TRANSFER_CONFLICT")


async def test_an_id_already_recorded_as_cleared_transfer_is_refused(gql):
    await gql("""mutation { recordTransfers(transfers: [{transferId: "x1", payerId: "dfsp-a", payeeId: "dfsp-b",
        amount: "1.00", currency: "USD", committedAt: "2026-03-01T11:00:00Z"}]) { recorded } }""", role="ingest")
    await prepare(gql, "x1", "1.00", None, expect_error="TRANSFER_CONFLICT")


# -- limits -----------------------------------------------------------------------------------------------------

async def test_many_transfers_against_one_debit_limit(gql):
    g = await create_grant(gql, debit="100.00")
    for i in range(20):
        await prepare(gql, f"d{i}", "5.00", g["id"], receive="4.00")
    error = await prepare(gql, "d20", "0.01", g["id"], expect_error="GRANT_LIMIT_EXCEEDED")
    assert error["field"] == ["input", "amount"] and "100.00" in error["message"]
    for i in range(0, 20, 2):
        await commit(gql, f"d{i}")
    after = await grant(gql, g["id"])
    assert value(after["spentDebitAmount"]) == "100.00" and after["spentReceiveAmount"] is None
    assert len(after["spentAmounts"]) == 30
    assert (await reconcile(gql, g["id"]))["consistent"]


async def test_many_transfers_against_one_receive_limit(gql):
    g = await create_grant(gql, receive="100.00")
    for i in range(10):
        await prepare(gql, f"r{i}", "12.00", g["id"], receive="10.00")
    error = await prepare(gql, "r10", "0.01", g["id"], receive="0.01", expect_error="GRANT_LIMIT_EXCEEDED")
    assert error["field"] == ["input", "receiveAmount"]
    after = await grant(gql, g["id"])
    assert value(after["spentReceiveAmount"]) == "100.00" and after["spentDebitAmount"] is None


async def test_limit_used_up_without_interval(gql):
    g = await create_grant(gql, debit="50.00")
    await prepare(gql, "a", "50.00", g["id"])
    await commit(gql, "a")
    await prepare(gql, "b", "0.01", g["id"], expect_error="GRANT_LIMIT_EXCEEDED")
    # still used up much later: no interval means overall
    await prepare(gql, "c", "0.01", g["id"], at="2026-03-01T11:59", expect_error="GRANT_LIMIT_EXCEEDED")


async def test_a_failed_first_transfer_frees_its_reservation(gql):
    g = await create_grant(gql, debit="50.00")
    await prepare(gql, "a", "50.00", g["id"])
    await prepare(gql, "b", "50.00", g["id"], expect_error="GRANT_LIMIT_EXCEEDED")
    aborted = await abort(gql, "a", reason="no route")
    assert aborted["state"] == "ABORTED" and aborted["sentAmount"] == "0.00"
    assert value((await grant(gql, g["id"]))["spentDebitAmount"]) == "0.00"
    await prepare(gql, "b", "50.00", g["id"])
    await commit(gql, "b")
    assert value((await grant(gql, g["id"]))["spentDebitAmount"]) == "50.00"
    assert (await reconcile(gql, g["id"]))["consistent"]


# -- commit / abort sequences (the Rafiki cases) ----------------------------------------------------------------

async def test_create_create_commit_commit(gql):
    g = await create_grant(gql, receive="100.00")
    await prepare(gql, "t1", "40.00", g["id"])
    await prepare(gql, "t2", "50.00", g["id"])
    await commit(gql, "t1")
    await commit(gql, "t2")
    after = await grant(gql, g["id"])
    assert value(after["spentReceiveAmount"]) == "90.00"
    assert [(r["transferId"], r["state"], r["totalReceiveAmount"]) for r in after["spentAmounts"]] == [
        ("t1", "RESERVED", "40.00"), ("t2", "RESERVED", "90.00"),
        ("t1", "COMMITTED", "90.00"), ("t2", "COMMITTED", "90.00"),
    ]


async def test_create_create_partial_partial(gql):
    g = await create_grant(gql, receive="100.00")
    await prepare(gql, "t1", "40.00", g["id"])
    await prepare(gql, "t2", "50.00", g["id"])
    c1 = await commit(gql, "t1", "30.00")
    assert c1["deliveredAmount"] == "30.00" and c1["transfer"]["amount"] == "40.00"
    await commit(gql, "t2", "45.50")
    after = await grant(gql, g["id"])
    assert value(after["spentReceiveAmount"]) == "75.50"
    records = after["spentAmounts"]
    assert [(r["transferId"], r["transferReceiveAmount"], r["totalReceiveAmount"]) for r in records[2:]] == [
        ("t1", "30.00", "80.00"), ("t2", "45.50", "75.50"),
    ]


async def test_create_create_partial_create_partial(gql):
    g = await create_grant(gql, receive="100.00")
    await prepare(gql, "t1", "40.00", g["id"])
    await prepare(gql, "t2", "50.00", g["id"])
    await commit(gql, "t1", "20.00")  # gives back 20.00: room is now 30.00
    await prepare(gql, "t3", "30.01", g["id"], expect_error="GRANT_LIMIT_EXCEEDED")
    await prepare(gql, "t3", "30.00", g["id"])
    await commit(gql, "t2", "10.00")
    after = await grant(gql, g["id"])
    assert value(after["spentReceiveAmount"]) == "60.00"
    assert (await reconcile(gql, g["id"]))["consistent"]


async def test_partial_commit_keeps_the_debit_side_spent(gql):
    g = await create_grant(gql, debit="100.00")
    await prepare(gql, "t1", "60.00", g["id"])
    await commit(gql, "t1", "10.00")
    after = await grant(gql, g["id"])
    assert value(after["spentDebitAmount"]) == "60.00"
    assert after["spentAmounts"][-1]["totalReceiveAmount"] == "10.00"


async def test_create_create_abort_commit(gql):
    g = await create_grant(gql, debit="100.00")
    await prepare(gql, "t1", "40.00", g["id"])
    await prepare(gql, "t2", "50.00", g["id"])
    await abort(gql, "t1")
    await commit(gql, "t2")
    after = await grant(gql, g["id"])
    assert value(after["spentDebitAmount"]) == "50.00"
    await prepare(gql, "t3", "50.00", g["id"])
    await prepare(gql, "t4", "0.01", g["id"], expect_error="GRANT_LIMIT_EXCEEDED")


async def test_abort_with_sent_amount_keeps_it_and_the_receive_side_in_proportion_rounded_down(gql):
    g = await create_grant(gql, receive="100.00")
    await prepare(gql, "t1", "30.00", g["id"], receive="10.00")
    aborted = await abort(gql, "t1", "10.00")  # a third sent: 3.333.. -> 3.33 of the receive side stays spent
    assert aborted["sentAmount"] == "10.00"
    after = await grant(gql, g["id"])
    assert value(after["spentReceiveAmount"]) == "3.33"
    assert after["spentAmounts"][-1]["transferDebitAmount"] == "10.00"
    assert after["spentAmounts"][-1]["transferReceiveAmount"] == "3.33"
    await prepare(gql, "t2", "9.00", g["id"], receive="3.00")
    await abort(gql, "t2", "8.99")
    assert value((await grant(gql, g["id"]))["spentReceiveAmount"]) == "6.32"  # 3.33 + 2.99 (2.9966.. rounded down)
    await prepare(gql, "t3", "1.00", g["id"])
    await abort(gql, "t3", "1.01", expect_error="AMOUNT_EXCEEDS_RESERVED")


async def test_retried_commit_and_abort_change_nothing(gql):
    g = await create_grant(gql, receive="100.00")
    await prepare(gql, "t1", "40.00", g["id"])
    await prepare(gql, "t2", "40.00", g["id"])
    first = await commit(gql, "t1", "30.00")
    again = await commit(gql, "t1", "30.00")
    assert again == first
    assert (await commit(gql, "t1"))["deliveredAmount"] == "30.00"  # the first commit stands
    await abort(gql, "t2", "5.00")
    assert (await abort(gql, "t2"))["sentAmount"] == "5.00"
    after = await grant(gql, g["id"])
    assert len(after["spentAmounts"]) == 4
    transfers = await gql("{ batches { edges { node { transferCount } } } }")
    assert sum(e["node"]["transferCount"] for e in transfers["batches"]["edges"]) == 1


async def test_commit_after_abort_and_abort_after_commit_are_refused(gql):
    g = await create_grant(gql, debit="100.00")
    await prepare(gql, "t1", "10.00", g["id"])
    await prepare(gql, "t2", "10.00", g["id"])
    await abort(gql, "t1")
    await commit(gql, "t2")
    error = await commit(gql, "t1", expect_error="INVALID_TRANSITION")
    assert "aborted" in error["message"]
    error = await abort(gql, "t2", expect_error="INVALID_TRANSITION")
    assert "committed" in error["message"]
    await commit(gql, "nope", expect_error="NOT_FOUND")
    await abort(gql, "nope", expect_error="NOT_FOUND")


async def test_commit_validation(gql):
    g = await create_grant(gql, receive="100.00")
    await prepare(gql, "t1", "10.00", g["id"], at="2026-03-01T11:00")
    await commit(gql, "t1", "10.01", expect_error="AMOUNT_EXCEEDS_RESERVED")
    await commit(gql, "t1", "0.00", expect_error="AMOUNT_NOT_POSITIVE")
    await commit(gql, "t1", "1.001", expect_error="AMOUNT_SCALE")
    await commit(gql, "t1", at="2026-03-01T10:59", expect_error="VALIDATION")
    await commit(gql, "t1", at="2026-03-01T12:30", expect_error="VALIDATION")  # too far in the future
    assert (await grant(gql, g["id"]))["spentAmounts"][-1]["state"] == "RESERVED"
    done = await commit(gql, "t1", at="2026-03-01T11:30")
    assert done["committedAt"] == "2026-03-01T11:30:00+00:00"
    assert done["transfer"]["committedAt"] == "2026-03-01T11:30:00+00:00"
    assert done["transfer"]["batch"]["name"] == "DEFAULT.USD.2026.03.01.11.30.001"


async def test_a_commit_that_cannot_be_filed_rolls_back_entirely(gql):
    await gql("""mutation { createSettlementModel(input: {name: "RTP", batchIntervalSeconds: 60}) {
        userErrors { code } } }""", role="operator")
    g = await create_grant(gql, receive="100.00")
    await prepare(gql, "t1", "10.00", g["id"], settlementModel="RTP")
    await gql('mutation { setSettlementModelActive(name: "RTP", active: false) { userErrors { code } } }',
              role="operator")
    error = await commit(gql, "t1", "5.00", expect_error="INACTIVE_MODEL")
    assert error["field"] == ["settlementModel"]
    state = await gql('{ preparedTransfer(transferId: "t1") { state deliveredAmount } }', role="viewer")
    assert state["preparedTransfer"] == {"state": "RESERVED", "deliveredAmount": None}
    after = await grant(gql, g["id"])
    assert value(after["spentReceiveAmount"]) == "10.00" and len(after["spentAmounts"]) == 1
    assert (await gql('{ transfer(transferId: "t1") { transferId } }', role="viewer"))["transfer"] is None
    await abort(gql, "t1")
    assert value((await grant(gql, g["id"]))["spentReceiveAmount"]) == "0.00"
