"""Locked batches grouped by status and owner (app/batches/store.LockedRows): what a matrix-wide command decides by."""
from __future__ import annotations

from app.batches.store import BatchGroup, LockedBatch, LockedRows


def test_rows_group_by_status_and_owner_and_read_one_by_one():
    rows = LockedRows.grouped([(1, "OPEN", None), (2, "CLOSED", None), (3, "OPEN", None), (4, "SETTLED", 9)])
    assert [(g.status, g.owner_matrix_id, g.ids) for g in rows.groups] == [
        ("OPEN", None, [1, 3]), ("CLOSED", None, [2]), ("SETTLED", 9, [4])]
    assert rows[4] == LockedBatch(4, "SETTLED", 0, 9)
    assert rows.get(5) is None and 5 not in rows and 3 in rows
    assert len(rows) == 4 and sorted(rows) == [1, 2, 3, 4]
    assert rows.ids_in("OPEN") == [1, 3] and rows.ids_in("IN_DISPUTE") == []


def test_moved_rows_join_the_group_of_their_new_status_and_keep_their_owner():
    rows = LockedRows([BatchGroup("OPEN", None, [1, 3, 5]), BatchGroup("CLOSED", None, [2, 4]),
                       BatchGroup("OPEN", 7, [6])])
    moved = rows.moved([1, 5, 6], "CLOSED")
    assert sorted((g.status, g.owner_matrix_id or 0, g.ids) for g in moved.groups) == [
        ("CLOSED", 0, [1, 2, 4, 5]), ("CLOSED", 7, [6]), ("OPEN", 0, [3])]
    assert moved[5].status == "CLOSED" and rows[5].status == "OPEN"  # the rows before are unchanged
    assert rows.moved([], "CLOSED") is rows


def test_groups_that_know_their_rollup_row_count_the_batches_leaving_it():
    hour, next_hour = (1, "EUR", "", 3600), (1, "EUR", "", 7200)
    rows = LockedRows([BatchGroup("OPEN", None, [1, 2], hour), BatchGroup("CLOSED", None, [3], hour),
                       BatchGroup("CLOSED", None, [4, 5, 6], next_hour)])
    assert rows.rollup_counts() == {(*hour, "OPEN"): 2, (*hour, "CLOSED"): 1, (*next_hour, "CLOSED"): 3}
    moved = rows.moved([1], "CLOSED")  # stays in its hour's row, under its new status
    assert moved.rollup_counts() == {(*hour, "OPEN"): 1, (*hour, "CLOSED"): 2, (*next_hour, "CLOSED"): 3}
    assert LockedRows([BatchGroup("CLOSED", None, [7])]).rollup_counts() is None  # a row it does not know
