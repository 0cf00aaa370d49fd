"""The event bus (SPEC §8): events published only after their transaction commits, fanned out to subscribers.

The bottom of live events: it carries events without knowing them (the domains define their events; the wire
format for other processes is app/events/codec.py). Two backends behind one interface:
- `EventBus` itself delivers in-process (a single server process, and SQLite);
- `PostgresEventBus` (app/events/postgres.py) also carries events between processes through LISTEN/NOTIFY.

Callers publish after their transaction committed (a rolled-back change is never published). Events carry ids
and facts; subscribers resolve what they show afresh for every event.

Back-pressure: every subscriber has a bounded queue. When it is full the subscriber is dropped: its queue is
emptied and replaced by one `Overflow` marker, so a stuck subscriber never holds more than `queue_size` events.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 100  # events (or results) a subscriber may fall behind before it is dropped
PUBLISH_SLICE = 500  # events published in one turn of the event loop (a day's settlement changes 86,400 batches)
Event = Any  # a domain's event: StatusChange, TransfersFiled, MatrixChanged, or the bus's own Resync


@dataclass(frozen=True, eq=False)
class Resync:
    """Events from other processes may have been missed (the LISTEN connection was re-established)."""


@dataclass(frozen=True, eq=False)
class Overflow:
    """Put in place of a dropped subscriber's queue: it could not keep up."""

    queue_size: int



class SubscriberOverflow(Exception):
    """The subscriber fell more than its queue size behind and was dropped."""

    def __init__(self, queue_size: int) -> None:
        super().__init__(f"slow consumer: more than {queue_size} events were waiting; subscription dropped")
        self.queue_size = queue_size


@dataclass(eq=False)
class Subscription:
    """One subscriber's bounded queue. `accepts` filters synchronously at publish time."""

    queue: asyncio.Queue[Event | Overflow]
    accepts: Callable[[Event], bool] | None = None
    overflowed: bool = False

    async def next(self) -> Event:
        item = await self.queue.get()
        if isinstance(item, Overflow):
            raise SubscriberOverflow(item.queue_size)
        return item

    def next_nowait(self) -> Event | None:
        """The next queued event, or None when there is none."""
        if self.queue.empty():
            return None
        item = self.queue.get_nowait()
        if isinstance(item, Overflow):
            raise SubscriberOverflow(item.queue_size)
        return item

    def offer(self, event: Event) -> bool:
        """Queue the event; False when the queue was full (the subscriber is then overflowed)."""
        if self.overflowed:
            return False
        if self.accepts is not None and not isinstance(event, Resync) and not self.accepts(event):
            return True
        try:
            self.queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            self.overflowed = True
            size = self.queue.maxsize
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(Overflow(size))
            return False


@dataclass
class BusStats:
    published: int = 0
    delivered: int = 0
    dropped_subscribers: int = 0
    remote_received: int = 0
    notifications_sent: int = 0
    reconnects: int = 0


@dataclass
class EventBus:
    """The in-process backend; the base of every backend."""

    queue_size: int = DEFAULT_QUEUE_SIZE
    subscribers: set[Subscription] = field(default_factory=set)
    stats: BusStats = field(default_factory=BusStats)
    _later: deque[list[Event]] = field(default_factory=deque, init=False, repr=False)
    _publisher: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Nothing to connect in-process."""

    async def stop(self) -> None:
        """Nothing to disconnect in-process."""

    @property
    def connected(self) -> bool:
        return True

    # -- subscribers ----------------------------------------------------------------------------
    def subscribe(self, accepts: Callable[[Event], bool] | None = None, queue_size: int | None = None) -> Subscription:
        sub = Subscription(asyncio.Queue(queue_size or self.queue_size), accepts)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    # -- publishing (after commit) --------------------------------------------------------------
    def publish_committed(self, events: list[Event]) -> None:
        """Publish the events of a committed change on later turns of the event loop, in call order, a slice at a
        time: the caller's answer is not held up, and a change of 86,400 batches never holds the loop (every
        event is still published, in order)."""
        if not events:
            return
        idle = not self._later and (self._publisher is None or self._publisher.done())
        if idle and len(events) <= PUBLISH_SLICE:  # the common case: one turn, no task (call order is kept)
            asyncio.get_running_loop().call_soon(self.publish, events)
            return
        self._later.append(events)
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.get_running_loop().create_task(self._publish_later(),
                                                                    name="settlegraph-publish")

    async def _publish_later(self) -> None:
        while self._later:
            events = self._later.popleft()
            for start in range(0, len(events), PUBLISH_SLICE):
                await asyncio.sleep(0)  # let requests (and the answer of the change itself) through first
                self.publish(events[start:start + PUBLISH_SLICE])

    def publish(self, events: Iterable[Event]) -> None:
        batch = list(events)
        if batch:
            self.stats.published += len(batch)
            self.deliver(batch)

    def deliver(self, events: Sequence[Event]) -> None:
        """Fan events out to this process's subscribers."""
        for event in events:
            for sub in list(self.subscribers):
                if not sub.offer(event):
                    self.subscribers.discard(sub)
                    self.stats.dropped_subscribers += 1
                    log.warning("subscriber dropped: its queue of %d events is full", sub.queue.maxsize)
                else:
                    self.stats.delivered += 1
