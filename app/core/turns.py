"""Python work over tens of thousands of items, done in slices with a turn of the event loop between them: a matrix
moves 86,400 batches, and building or checking them all in one go would hold every other request of the process
(the loop-lag gauge, app/core/metrics.LoopLag, shows it)."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

SLICE = 5_000  # items between two turns: a few milliseconds of work


async def slices(count: int, size: int = SLICE) -> AsyncIterator[range]:
    """The indexes 0..count-1, a range at a time, other tasks running between two ranges."""
    for start in range(0, count, size):
        if start:
            await asyncio.sleep(0)
        yield range(start, min(start + size, count))
