"""Bulk work in slices, and the garbage collector's pace while it runs."""
from __future__ import annotations

import gc

from app.core.turns import BULK_GC_THRESHOLDS, bulk_work, slices


async def test_slices_cover_every_index_once_in_order():
    seen = [k async for part in slices(12_345, 5_000) for k in part]
    assert seen == list(range(12_345))
    assert [len(part) async for part in slices(10_000, 5_000)] == [5_000, 5_000]
    assert [part async for part in slices(0)] == []


def test_bulk_work_collects_less_often_until_the_last_one_ends():
    before = gc.get_threshold()
    with bulk_work():
        assert gc.get_threshold() == BULK_GC_THRESHOLDS
        with bulk_work():  # two commands at once: the first to end leaves the other's pace alone
            assert gc.get_threshold() == BULK_GC_THRESHOLDS
        assert gc.get_threshold() == BULK_GC_THRESHOLDS
    assert gc.get_threshold() == before
    try:
        with bulk_work():
            raise ValueError("a failed command")
    except ValueError:
        pass
    assert gc.get_threshold() == before
