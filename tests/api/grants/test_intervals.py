"""Grant limits over repeating intervals through the real server (SPEC §9): spending stays in the period of
preparation, late commits and aborts adjust that period only, boundaries are half-open, R0/Rn and the three
interval forms."""
from __future__ import annotations

from tests.support.grants import abort, clock_at, commit, create_grant, grant, prepare, reconcile, ts, value

DAILY = "R/2026-03-01T00:00:00Z/P1D"


async def test_limit_used_up_within_an_interval_and_free_again_in_the_next(gql):
    with clock_at("2026-03-01T10:00") as now:
        g = await create_grant(gql, debit="100.00", interval=DAILY)
        assert g["currentInterval"] == {"index": 0, "start": ts("2026-03-01T00:00"), "end": ts("2026-03-02T00:00")}
        await prepare(gql, "a", "100.00", g["id"])
        await prepare(gql, "b", "0.01", g["id"], expect_error="GRANT_LIMIT_EXCEEDED")
        now[0] = now[0].replace(day=2)
        fresh = await grant(gql, g["id"])
        assert fresh["spentDebitAmount"] == {"value": "0.00", "currency": "USD"}  # zero in a new interval
        assert value(fresh["totalSpentDebitAmount"]) == "100.00"
        await prepare(gql, "b", "100.00", g["id"])
        await prepare(gql, "c", "0.01", g["id"], expect_error="GRANT_LIMIT_EXCEEDED")


async def test_transfers_across_intervals_reset_interval_sums_but_keep_the_grant_total(gql):
    with clock_at("2026-03-05T12:00"):
        g = await create_grant(gql, receive="50.00", interval=DAILY)
        for day in (1, 2, 3, 4, 5):
            await prepare(gql, f"t{day}", "30.00", g["id"], at=f"2026-03-0{day}T09:00")
            await commit(gql, f"t{day}", "20.00", at="2026-03-05T11:00")
        after = await grant(gql, g["id"])
        assert value(after["spentReceiveAmount"]) == "20.00"
        assert value(after["totalSpentReceiveAmount"]) == "100.00"
        assert [r["intervalReceiveAmount"] for r in after["spentAmounts"] if r["state"] == "COMMITTED"] == \
            ["20.00"] * 5
        assert [r["totalReceiveAmount"] for r in after["spentAmounts"] if r["state"] == "COMMITTED"] == \
            ["20.00", "40.00", "60.00", "80.00", "100.00"]
        assert (await reconcile(gql, g["id"]))["consistent"]


async def test_a_transfer_prepared_at_a_boundary_belongs_to_the_interval_it_opens(gql):
    with clock_at("2026-03-02T12:00"):
        g = await create_grant(gql, debit="10.00", interval=DAILY)
        last = await prepare(gql, "late", "10.00", g["id"], at="2026-03-01T23:59:59.999999")
        assert last["interval"]["index"] == 0
        first = await prepare(gql, "edge", "10.00", g["id"], at="2026-03-02T00:00")
        assert first["interval"] == {"index": 1, "start": ts("2026-03-02T00:00"), "end": ts("2026-03-03T00:00")}
        await prepare(gql, "more", "0.01", g["id"], at="2026-03-02T00:00", expect_error="GRANT_LIMIT_EXCEEDED")
        await prepare(gql, "more", "0.01", g["id"], at="2026-03-01T23:00", expect_error="GRANT_LIMIT_EXCEEDED")


async def test_a_late_commit_or_abort_adjusts_the_interval_of_preparation_only(gql):
    with clock_at("2026-03-01T10:00") as now:
        g = await create_grant(gql, receive="150.00", interval=DAILY)
        await prepare(gql, "t1", "100.00", g["id"])
        await prepare(gql, "t2", "40.00", g["id"])
        now[0] = now[0].replace(day=2)  # interval 2 (index 1)
        await prepare(gql, "t3", "120.00", g["id"])
        partial = await commit(gql, "t1", "70.00")  # late partial commit: interval 1 gives back 30.00
        assert partial["interval"]["index"] == 0
        await abort(gql, "t2")  # late abort: interval 1 gives back 40.00
        after = await grant(gql, g["id"])
        assert value(after["spentReceiveAmount"]) == "120.00"  # interval 2 untouched
        assert value(after["totalSpentReceiveAmount"]) == "190.00"
        late = [r for r in after["spentAmounts"] if r["transferId"] in ("t1", "t2") and r["state"] != "RESERVED"]
        assert [(r["interval"]["index"], r["intervalReceiveAmount"], r["totalReceiveAmount"]) for r in late] == [
            (0, "110.00", "230.00"), (0, "70.00", "190.00"),
        ]
        # a transfer prepared in interval 2 afterwards sees interval 2's true sum (120.00), not interval 1's
        await prepare(gql, "t4", "30.01", g["id"], expect_error="GRANT_LIMIT_EXCEEDED")
        await prepare(gql, "t4", "30.00", g["id"])
        assert value((await grant(gql, g["id"]))["spentReceiveAmount"]) == "150.00"
        # and interval 1, replayed into, has exactly its own room left: 150 - 70
        await prepare(gql, "t5", "80.01", g["id"], at="2026-03-01T20:00", expect_error="GRANT_LIMIT_EXCEEDED")
        await prepare(gql, "t5", "80.00", g["id"], at="2026-03-01T20:00")
        assert (await reconcile(gql, g["id"]))["consistent"]


async def test_r0_is_the_first_period_only(gql):
    with clock_at("2026-03-01T10:00") as now:
        g = await create_grant(gql, debit="10.00", interval="R0/2026-03-01T00:00:00Z/P1D")
        await prepare(gql, "a", "5.00", g["id"])
        now[0] = now[0].replace(day=2)
        error = await prepare(gql, "b", "1.00", g["id"], at="2026-03-02T00:00", expect_error="GRANT_NOT_ACTIVE")
        assert error["field"] == ["input", "preparedAt"]
        await prepare(gql, "b", "1.00", g["id"], at="2026-02-28T23:59", expect_error="GRANT_NOT_ACTIVE")
        now[0] = now[0].replace(day=3)
        after = await grant(gql, g["id"])
        assert after["currentInterval"] is None and value(after["spentDebitAmount"]) == "0.00"


async def test_rn_is_the_first_period_and_n_repetitions(gql):
    with clock_at("2026-03-05T10:00"):
        g = await create_grant(gql, debit="10.00", interval="R2/2026-03-01T00:00:00Z/P1D")
        for day in (1, 2, 3):
            assert (await prepare(gql, f"d{day}", "10.00", g["id"], at=f"2026-03-0{day}T10:00"))["interval"][
                "index"] == day - 1
        await prepare(gql, "d4", "1.00", g["id"], at="2026-03-04T00:00", expect_error="GRANT_NOT_ACTIVE")


async def test_start_end_form_repeats_with_the_first_period_length(gql):
    with clock_at("2026-03-23T00:00"):
        g = await create_grant(gql, debit="10.00", interval="R/2026-03-02T00:00:00Z/2026-03-09T00:00:00Z")
        t = await prepare(gql, "w", "10.00", g["id"], at="2026-03-16T08:00")
        assert t["interval"] == {"index": 2, "start": ts("2026-03-16T00:00"), "end": ts("2026-03-23T00:00")}
        await prepare(gql, "w2", "1.00", g["id"], at="2026-03-22T23:59", expect_error="GRANT_LIMIT_EXCEEDED")
        await prepare(gql, "w2", "1.00", g["id"], at="2026-03-15T23:59")


async def test_duration_end_form_counts_back_from_its_end(gql):
    with clock_at("2026-03-09T12:00") as now:
        g = await create_grant(gql, debit="10.00", interval="R1/P1D/2026-03-10T00:00:00Z")
        t = await prepare(gql, "x", "10.00", g["id"])
        assert t["interval"] == {"index": 0, "start": ts("2026-03-09T00:00"), "end": ts("2026-03-10T00:00")}
        assert (await prepare(gql, "y", "10.00", g["id"], at="2026-03-08T00:00"))["interval"]["index"] == 1
        await prepare(gql, "z", "1.00", g["id"], at="2026-03-07T23:59", expect_error="GRANT_NOT_ACTIVE")
        now[0] = now[0].replace(day=10, hour=0)
        await prepare(gql, "z", "1.00", g["id"], expect_error="GRANT_NOT_ACTIVE")  # the end is excluded


async def test_monthly_interval_follows_the_calendar(gql):
    with clock_at("2026-04-30T12:00"):
        g = await create_grant(gql, debit="10.00", interval="R/2026-01-31T00:00:00Z/P1M")
        t = await prepare(gql, "m", "10.00", g["id"])
        assert t["interval"] == {"index": 3, "start": ts("2026-04-30T00:00"), "end": ts("2026-05-31T00:00")}
        feb = await prepare(gql, "f", "10.00", g["id"], at="2026-03-30T00:00")
        assert feb["interval"]["start"] == ts("2026-02-28T00:00")
