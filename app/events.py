"""Live events (SPEC §8): published only after their transaction commits.

This is the in-process bus: subscribers get bounded queues. Events carry ids only; subscribers resolve
them afresh.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.batch_lifecycle import StatusChange

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchStatusEvent:
    batch_id: int
    from_status: str | None
    to_status: str
    at: str
    actor: str | None
    reason: str | None
    matrix_id: int | None

    @classmethod
    def of(cls, change: StatusChange) -> BatchStatusEvent:
        return cls(change.batch_id, change.from_status, change.to_status, change.at.isoformat(), change.actor,
                   change.reason, change.matrix_id)


@dataclass(frozen=True)
class BatchTotalsEvent:
    batch_ids: tuple[int, ...]


Event = BatchStatusEvent | BatchTotalsEvent


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[Event]
    overflowed: bool = False


@dataclass
class EventBus:
    queue_size: int = 1000
    subscribers: set[Subscription] = field(default_factory=set)

    def subscribe(self) -> Subscription:
        sub = Subscription(asyncio.Queue(self.queue_size))
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    def publish(self, events: Iterable[Event]) -> None:
        for event in events:
            for sub in list(self.subscribers):
                try:
                    sub.queue.put_nowait(event)
                except asyncio.QueueFull:
                    sub.overflowed = True
                    self.subscribers.discard(sub)
                    log.warning("subscriber dropped: its queue of %d events is full", self.queue_size)

    def publish_status_changes(self, changes: Iterable[StatusChange]) -> None:
        self.publish(BatchStatusEvent.of(c) for c in changes)

    def publish_batch_totals(self, batch_ids: Iterable[int]) -> None:
        ids = tuple(sorted(batch_ids))
        if ids:
            self.publish([BatchTotalsEvent(ids)])
