"""What subscribers watch (SPEC §8), above the bus: batch status changes filtered by model and batch ids, and a
matrix's content changing (coalesced, so a burst of transfers gives a few updates, not thousands)."""
from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from app.batches.recording import TransfersFiled
from app.batches.status import StatusChange
from app.core import errors
from app.core.checks import parse_id
from app.core.errors import DomainError
from app.db.columns import fits
from app.events.bus import Event, EventBus
from app.matrices import membership, reports
from app.matrices.commands import MatrixChanged
from models.settlement import Batch, SettlementModel


class BatchModels:
    """Which model each batch belongs to, for filtering by model. A batch never changes model, so this
    may be remembered (bounded); concurrent look-ups of one batch share one query."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._known: OrderedDict[int, asyncio.Future[int | None]] = OrderedDict()

    async def model_of(self, batch_id: int) -> int | None:
        known = self._known.get(batch_id)
        if known is None:
            known = asyncio.get_running_loop().create_future()
            self._known[batch_id] = known
            if len(self._known) > self.size:
                self._known.popitem(last=False)
            try:
                found = await Batch.filter(id=batch_id).values("model_id")
            except Exception as exc:
                self._known.pop(batch_id, None)
                known.set_exception(exc)
                known.exception()  # retrieved: waiting subscribers get it, nobody else
                raise
            known.set_result(int(found[0]["model_id"]) if found else None)
        return await asyncio.shield(known)


@dataclass(frozen=True)
class BatchStatusFilter:
    model_id: int | None = None
    batch_ids: frozenset[int] = frozenset()

    def accepts(self, event: Event) -> bool:
        """The part decided without the database (at publish time)."""
        return isinstance(event, StatusChange) and (not self.batch_ids or event.batch_id in self.batch_ids)

    async def matches(self, event: StatusChange, models: BatchModels) -> bool:
        return self.model_id is None or await models.model_of(event.batch_id) == self.model_id


async def batch_status_filter(model: str | None, batch_ids: Sequence[str] | None) -> BatchStatusFilter:
    """The filter of batchStatusChanged(model, batchIds); an empty list means no filter, like BatchFilter."""
    ids = frozenset(parse_id(i, "batchIds") for i in batch_ids or ())
    model_id = None
    if model is not None:
        found = await SettlementModel.filter(name=model).values("id") if fits(SettlementModel, "name", model) else []
        if not found:
            raise DomainError(errors.UNKNOWN_MODEL, f"no settlement model named {model!r}", ["model"])
        model_id = int(found[0]["id"])
    return BatchStatusFilter(model_id, ids)


# -- matrixUpdated: when a matrix's content changed, coalesced (SPEC §8) ----------------------------
MATRIX_PUSH_INTERVAL = 0.25  # seconds: at most four pushes a second per matrix, however many transfers


class MatrixWatch:
    """Waits for changes of one matrix's content: transfers filed into its batches, status changes of its
    batches (also of one that just left a DYNAMIC matrix by its status), commands on the matrix itself.
    A change after a quiet spell is reported at once; later ones are gathered into one report per interval.
    Events are read as they come, so a burst never fills the subscriber's queue."""

    def __init__(self, bus: EventBus, matrix_id: int, interval: float = MATRIX_PUSH_INTERVAL) -> None:
        self.bus = bus
        self.matrix_id = matrix_id
        self.interval = interval
        self.subscription = bus.subscribe(self._accepts)
        self._next_at = 0.0
        self._dirty = False
        self._filed: set[int] = set()  # batches that got transfers
        self._moved: set[int] = set()  # batches that changed status

    def _accepts(self, event: Event) -> bool:
        return not isinstance(event, MatrixChanged) or event.matrix_id == self.matrix_id

    def close(self) -> None:
        self.bus.unsubscribe(self.subscription)

    def _take(self, event: Event) -> None:
        if isinstance(event, TransfersFiled):
            self._filed.update(event.batch_ids)
        elif isinstance(event, StatusChange) and event.matrix_id != self.matrix_id:
            self._moved.add(event.batch_id)
        else:  # a command on this matrix, or a Resync
            self._dirty = True

    @property
    def _pending(self) -> bool:
        return self._dirty or bool(self._filed) or bool(self._moved)

    async def changed(self) -> None:
        """Return when the matrix's content changed, at most once per interval."""
        loop = asyncio.get_running_loop()
        while True:
            wait = max(0.0, self._next_at - loop.time()) if self._pending else None
            if wait is None or wait > 0:
                try:
                    self._take(await asyncio.wait_for(self.subscription.next(), wait))
                except TimeoutError:
                    pass
            while (event := self.subscription.next_nowait()) is not None:
                self._take(event)
            if not self._pending or loop.time() < self._next_at:
                continue
            if not self._dirty:
                self._dirty = await matrix_touched(self.matrix_id, self._filed, self._moved)
            self._filed.clear()
            self._moved.clear()
            if self._dirty:
                self._dirty = False
                self._next_at = loop.time() + self.interval
                return


async def matrix_touched(matrix_id: int, filed: set[int], moved: set[int]) -> bool:
    """Whether transfers filed into `filed` or status changes of `moved` changed the matrix's content."""
    found = await membership.matrices_containing(sorted(filed | moved))
    if any(m.id == matrix_id for held in found.values() for m in held):
        return True
    if not moved:
        return False
    # A batch that left a live DYNAMIC matrix because its new status is not among the matrix's statuses.
    matrix = await reports.get(matrix_id)
    return matrix is not None and await membership.left_by_status(matrix, sorted(moved))
