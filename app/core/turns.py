"""Python work over tens of thousands of items, done in slices with a turn of the event loop between them: a matrix
moves 86,400 batches, and building or checking them all in one go would hold every other request of the process
(the loop-lag gauge, app/core/metrics.LoopLag, shows it)."""
from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Iterator

# Items between two turns: about a millisecond of work. A clearing call that holds a hot row lock (an hour's rollup
# row, a participant's account) waits for its worker's next turn to send its next statement, and every call queued on
# that row waits with it (bench/clearing.py --waits shows them waiting on each other). With 1,000 instead of 5,000,
# clearing's p99 during a day's settle was lower in 4 interleaved runs of 4 (96-124 ms against 119-138 ms) and the
# settle ~3% longer.
SLICE = 1_000


async def slices(count: int, size: int = SLICE) -> AsyncIterator[range]:
    """The indexes 0..count-1, a range at a time, other tasks running between two ranges."""
    for start in range(0, count, size):
        if start:
            await asyncio.sleep(0)
        yield range(start, min(start + size, count))


# While bulk work runs, cyclic collections every 50,000 net allocations instead of Python's 700. A settlement builds a
# few hundred thousand short-lived objects (a status change and its event per batch, locked rows): at 700 they set off
# over a thousand collections and several full ones, half the CPU of that work and pauses of up to 60 ms each on the
# event loop; at 50,000 a dozen young collections of a few milliseconds (measured: 296 ms of collecting -> 25 ms,
# longest pause 58 ms -> 3 ms). Not for all the time: single-transfer calls' p99 went from 60 to 100 ms with it.
BULK_GC_THRESHOLDS = (50_000, 20, 20)
_running = 0  # bulk work in progress in this process (one event loop: no lock needed)
_saved = gc.get_threshold()


@contextlib.contextmanager
def bulk_work() -> Iterator[None]:
    """Collect garbage less often while this (and any other bulk work of the process) runs."""
    global _running, _saved
    if _running == 0:
        _saved = gc.get_threshold()
        gc.set_threshold(*BULK_GC_THRESHOLDS)
    _running += 1
    try:
        yield
    finally:
        _running -= 1
        if _running == 0:
            gc.set_threshold(*_saved)
