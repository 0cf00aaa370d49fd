"""Group commit: concurrent small writes of one kind share a database transaction.

A single-transfer recordTransfers, prepareTransfer or commitTransfer costs the database a BEGIN, a few
statements and a COMMIT, and concurrent ones queue on the same hot rows (a batch's accounts, a grant):
each transaction holds those row locks until its commit. While one group's transaction is in flight, the
writes arriving queue; the next transaction takes all of them. Nothing waits on a timer: a write arriving
at an idle writer starts at once.

Each item keeps its own outcome. `write_group(items)` answers one result per item, in order, where an
exception instance is that item's own refusal (it must have written nothing in the transaction); if it
raises instead, the transaction rolled back, and every item of the group is written again alone, so one
item's failure never fails another.
"""
from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from app.core import metrics

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 - an item of work
R = TypeVar("R")


class Dirty(Exception):
    """An item failed after it wrote in the group's transaction: the group must roll back and go one by one."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass(slots=True)
class _Waiting(Generic[I, R]):
    item: I
    future: asyncio.Future[R]


class GroupWriter(Generic[I, R]):
    """The queue of one kind of write on one event loop, and the one task that writes it, group by group.

    `size(item)` counts towards `limit` a group; items with different `key(item)` never share a group (the
    first waiting item's key decides), and neither do items with the same `unique(item)`."""

    def __init__(
        self,
        name: str,
        write_group: Callable[[list[I]], Awaitable[Sequence[R | BaseException]]],
        *,
        limit: int,
        size: Callable[[I], int] = lambda item: 1,
        key: Callable[[I], Hashable] = lambda item: None,
        unique: Callable[[I], Hashable] | None = None,
    ) -> None:
        self.name = name
        self.write_group = write_group
        self.limit, self.size, self.key, self.unique = limit, size, key, unique
        self.pending: deque[_Waiting[I, R]] = deque()
        self.writer: asyncio.Task[None] | None = None  # the one task writing, while there is work
        self.groups = 0  # groups written, and items in them (observable by tests and benchmarks)
        self.items = 0

    async def submit(self, item: I) -> R:
        waiting: _Waiting[I, R] = _Waiting(item, asyncio.get_running_loop().create_future())
        self.pending.append(waiting)
        if self.writer is None:
            self.writer = asyncio.create_task(self._drain(), name=f"settlegraph-group-{self.name}")
        return await waiting.future

    def _next_group(self) -> list[_Waiting[I, R]]:
        group: list[_Waiting[I, R]] = []
        later: deque[_Waiting[I, R]] = deque()
        size = 0
        seen: set[Hashable] = set()
        while self.pending:
            waiting = self.pending.popleft()
            if waiting.future.cancelled():  # its caller went away before it was written
                continue
            item = waiting.item
            twin = self.unique(item) if self.unique is not None else None
            if group and (self.key(item) != self.key(group[0].item) or size + self.size(item) > self.limit
                          or (twin is not None and twin in seen)):
                later.append(waiting)
                continue
            group.append(waiting)
            size += self.size(item)
            if twin is not None:
                seen.add(twin)
        later.extend(self.pending)
        self.pending = later
        return group

    async def _drain(self) -> None:
        try:
            while self.pending:
                group = self._next_group()
                if group:
                    await self._write(group)
        finally:
            self.writer = None  # synchronously: an item submitted from now on starts a new writer
            if self.pending:  # cancelled (shutdown): what waits fails rather than hangs
                for waiting in self.pending:
                    _settle(waiting, RuntimeError(f"the {self.name} writer stopped before this was written"))
                self.pending.clear()

    async def _write(self, group: list[_Waiting[I, R]]) -> None:
        self.groups += 1
        self.items += len(group)
        metrics.GROUP_SIZE.labels(writer=self.name).observe(len(group))
        try:
            results = await self.write_group([w.item for w in group])
        except BaseException as exc:
            if not isinstance(exc, Exception):  # cancelled (shutdown): the callers are told, not left waiting
                for waiting in group:
                    _settle(waiting, RuntimeError(f"the {self.name} writer stopped while this was being written"))
                raise
            if len(group) == 1:
                _settle(group[0], exc.cause if isinstance(exc, Dirty) else exc)
                return
            log.warning("a group of %d %s writes failed (%s); writing them one by one", len(group), self.name,
                        type(exc).__name__)
            metrics.GROUP_FALLBACKS.labels(writer=self.name).inc()
            for waiting in group:
                await self._write_alone(waiting)
            return
        for waiting, result in zip(group, results, strict=True):
            _settle(waiting, result)

    async def _write_alone(self, waiting: _Waiting[I, R]) -> None:
        try:
            result = (await self.write_group([waiting.item]))[0]
        except Exception as exc:
            _settle(waiting, exc.cause if isinstance(exc, Dirty) else exc)
            return
        _settle(waiting, result)


def _settle(waiting: _Waiting[Any, Any], result: Any) -> None:
    if waiting.future.done():
        return
    if isinstance(result, BaseException):
        waiting.future.set_exception(result)
    else:
        waiting.future.set_result(result)


_WRITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, GroupWriter[Any, Any]]] = (
    weakref.WeakKeyDictionary())


def writer(name: str, build: Callable[[], GroupWriter[I, R]]) -> GroupWriter[I, R]:
    """The event loop's writer called `name`, built on first use (each uvicorn worker has its own loop)."""
    loop = asyncio.get_running_loop()
    writers = _WRITERS.setdefault(loop, {})
    found = writers.get(name)
    if found is None:
        found = writers[name] = build()
    return found


def find(name: str) -> GroupWriter[Any, Any] | None:
    """The event loop's writer called `name`, if one was built (for tests and diagnostics)."""
    return _WRITERS.get(asyncio.get_running_loop(), {}).get(name)
