"""The hourly rollup's arithmetic: moving sums between statuses leaves every total where it belongs."""
from __future__ import annotations

from app.batches.rollup import AccountTotal, BucketMove, move_rows, participant_totals


def move(participant: str, debit: int, credit: int, count: int = 0, status: str = "CLOSED") -> BucketMove:
    return BucketMove(1, "USD", "", 3600, status, participant, debit, credit, count)


def test_a_move_takes_the_sums_out_of_the_old_status_and_adds_them_to_the_new():
    rows = move_rows([move("a", 500, 0), move("b", 0, 500), move("", 0, 0, 2)], "SETTLED")
    by_key = {(r[4], r[5]): r[6:] for r in rows}
    assert by_key[("CLOSED", "a")] == (-500, 0, 0) and by_key[("SETTLED", "a")] == (500, 0, 0)
    assert by_key[("CLOSED", "b")] == (0, -500, 0) and by_key[("SETTLED", "b")] == (0, 500, 0)
    assert by_key[("CLOSED", "")] == (0, 0, -2) and by_key[("SETTLED", "")] == (0, 0, 2)
    assert sum(r[6] for r in rows) == 0 and sum(r[7] for r in rows) == 0 and sum(r[8] for r in rows) == 0
    assert rows == sorted(rows)  # key order: movers never deadlock on the rollup rows


def test_a_move_to_the_same_status_changes_nothing():
    assert move_rows([move("a", 500, 0)], "CLOSED") == []


def test_participant_totals_skip_count_rows_and_emptied_rows():
    totals = participant_totals([move("a", 500, 0), move("a", 0, 200), move("", 0, 0, 3), move("b", 0, 0)])
    assert totals == [AccountTotal("a", "USD", 500, 200)]
    assert totals[0].net == -300
