"""Work a server process does in the background, every few seconds, beside the requests (never in their path):
sealing the audit log, purging expired idempotency keys, measuring the event loop's lag."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("settlegraph")


class Periodic:
    """Runs `work()` every `every` seconds until stopped; a failure is logged and the next round runs."""

    def __init__(self, name: str, every: float, work: Callable[[], Awaitable[None]]) -> None:
        self.name, self.every, self.work = name, every, work
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"settlegraph-{self.name}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.work()
            except Exception:
                log.exception("%s failed; the next round tries again", self.name)
