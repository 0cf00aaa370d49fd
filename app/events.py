"""Live events (SPEC §8): published only after their transaction commits.

One `EventBus` interface, two backends:

- `EventBus` itself delivers in-process (a single server process, and SQLite).
- `PostgresEventBus` also carries events between server processes through PostgreSQL LISTEN/NOTIFY, on one
  dedicated asyncpg connection (not the Tortoise pool) that is health-checked and re-established when lost.
  Local subscribers get an event at once; other processes get it from the NOTIFY, and skip their own.

Callers publish after their transaction committed (a rolled-back change is never published). Events carry
ids and the facts of a status change; subscribers resolve what they show afresh for every event.

Back-pressure: every subscriber has a bounded queue. When it is full the subscriber is dropped: its queue is
emptied and replaced by one `Overflow` marker, so a stuck subscriber never holds more than `queue_size` events.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from app import errors, matrices, matrix_totals
from app.batch_lifecycle import StatusChange
from app.batches import parse_id
from app.errors import DomainError
from models.settlement import Batch, SettlementModel

log = logging.getLogger(__name__)

# Close code and reason sent to a WebSocket whose subscriber queue overflowed (graphql-transport-ws reserves
# 4400-4499 for the server; 4429 reads as "too many messages for you").
SLOW_CONSUMER_CLOSE_CODE = 4429
DEFAULT_QUEUE_SIZE = 100  # events (or results) a subscriber may fall behind before it is dropped


# eq=False: events compare by identity, so the API layer can key per-event state (fresh loaders) on them.
# Not frozen (slots; weakly referenced per event by the API layer): a settled matrix publishes one per batch,
# 86,400 for a day of one-second batches.
@dataclass(eq=False, slots=True, weakref_slot=True)
class BatchStatusEvent:
    batch_id: int
    from_status: str | None
    to_status: str
    at: datetime
    actor: str | None
    reason: str | None
    matrix_id: int | None

    @classmethod
    def of(cls, change: StatusChange) -> BatchStatusEvent:
        return cls(change.batch_id, change.from_status, change.to_status, change.at, change.actor,
                   change.reason, change.matrix_id)


@dataclass(frozen=True, eq=False)
class BatchTotalsEvent:
    """Transfers were filed into these batches."""

    batch_ids: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class MatrixChangedEvent:
    """A command changed the matrix itself (its status, or the batches of a STATIC matrix)."""

    matrix_id: int


@dataclass(frozen=True, eq=False)
class Resync:
    """Events from other processes may have been missed (the LISTEN connection was re-established)."""


@dataclass(frozen=True, eq=False)
class Overflow:
    """Put in place of a dropped subscriber's queue: it could not keep up."""

    queue_size: int


Event = BatchStatusEvent | BatchTotalsEvent | MatrixChangedEvent | Resync


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
    def publish(self, events: Iterable[Event]) -> None:
        batch = list(events)
        if batch:
            self.stats.published += len(batch)
            self.deliver(batch)

    def publish_status_changes(self, changes: Iterable[StatusChange]) -> None:
        self.publish([BatchStatusEvent.of(c) for c in changes])

    def publish_batch_totals(self, batch_ids: Iterable[int]) -> None:
        ids = tuple(sorted(set(batch_ids)))
        if ids:
            self.publish([BatchTotalsEvent(ids)])

    def publish_matrix_changed(self, matrix_id: int) -> None:
        self.publish([MatrixChangedEvent(matrix_id)])

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


# -- filtering batch status events (SPEC §8: by model, by batch ids) ------------------------------
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
        return isinstance(event, BatchStatusEvent) and (not self.batch_ids or event.batch_id in self.batch_ids)

    async def matches(self, event: BatchStatusEvent, models: BatchModels) -> bool:
        return self.model_id is None or await models.model_of(event.batch_id) == self.model_id


async def batch_status_filter(model: str | None, batch_ids: Sequence[str] | None) -> BatchStatusFilter:
    """The filter of batchStatusChanged(model, batchIds); an empty list means no filter, like BatchFilter."""
    ids = frozenset(parse_id(i, "batchIds") for i in batch_ids or ())
    model_id = None
    if model is not None:
        found = await SettlementModel.filter(name=model).values("id")
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
        return not isinstance(event, MatrixChangedEvent) or event.matrix_id == self.matrix_id

    def close(self) -> None:
        self.bus.unsubscribe(self.subscription)

    def _take(self, event: Event) -> None:
        if isinstance(event, BatchTotalsEvent):
            self._filed.update(event.batch_ids)
        elif isinstance(event, BatchStatusEvent) and event.matrix_id != self.matrix_id:
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
    found = await matrices.matrices_containing(sorted(filed | moved))
    if any(m.id == matrix_id for held in found.values() for m in held):
        return True
    if not moved:
        return False
    # A batch that left a live DYNAMIC matrix because its new status is not among the matrix's statuses.
    matrix = await matrices.get(matrix_id)
    if matrix is None or not matrix_totals.is_live(matrix) or not matrix.batch_statuses:
        return False
    matrix.batch_statuses = ""  # this fresh row only: its criteria without the statuses
    return any(matrices.contains(matrix, set(), batch) for batch in await Batch.filter(id__in=sorted(moved)))


# -- the wire format of NOTIFY payloads ------------------------------------------------------------
CHANNEL = "settlegraph_events"
PAYLOAD_LIMIT = 4000  # bytes; PostgreSQL's hard limit is 8000
_HEADER_TEXT_LIMIT = 700  # characters of actor / reason carried in one payload (reasons are at most 512)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _size(value: Any) -> int:
    return len(_dumps(value).encode())


def encode(origin: str, events: Sequence[Event]) -> list[str]:
    """NOTIFY payloads for events, each at most PAYLOAD_LIMIT bytes.

    Status changes that share their facts (one matrix-wide settle of thousands of batches) travel as one
    header and a list of (batch id, from status) pairs; long lists are split over several payloads.
    """
    payloads: list[str] = []
    groups: OrderedDict[tuple[Any, ...], list[list[Any]]] = OrderedDict()
    totals: list[int] = []
    matrices: list[int] = []
    for event in events:
        if isinstance(event, BatchStatusEvent):
            key = (event.to_status, event.at, event.actor, event.reason, event.matrix_id)
            groups.setdefault(key, []).append([event.batch_id, event.from_status])
        elif isinstance(event, BatchTotalsEvent):
            totals.extend(event.batch_ids)
        elif isinstance(event, MatrixChangedEvent):
            matrices.append(event.matrix_id)
    for (to, at, actor, reason, matrix_id), pairs in groups.items():
        header = {"o": origin, "k": "s", "to": to, "at": at.isoformat(), "a": _clip(actor), "r": _clip(reason),
                  "m": matrix_id}
        for chunk in _split(pairs, PAYLOAD_LIMIT - _size({**header, "b": []})):
            payloads.append(_dumps({**header, "b": chunk}))
    if totals:
        header = {"o": origin, "k": "t"}
        for chunk in _split(sorted(set(totals)), PAYLOAD_LIMIT - _size({**header, "b": []})):
            payloads.append(_dumps({**header, "b": chunk}))
    if matrices:
        header = {"o": origin, "k": "m"}
        for chunk in _split(sorted(set(matrices)), PAYLOAD_LIMIT - _size({**header, "b": []})):
            payloads.append(_dumps({**header, "b": chunk}))
    return payloads


def decode(payload: str) -> tuple[str, list[Event]]:
    """(origin, events) of one NOTIFY payload."""
    body = json.loads(payload)
    origin = str(body["o"])
    if body["k"] == "s":
        at = datetime.fromisoformat(body["at"])
        return origin, [BatchStatusEvent(int(b), f, body["to"], at, body["a"], body["r"], body["m"])
                        for b, f in body["b"]]
    if body["k"] == "t":
        return origin, [BatchTotalsEvent(tuple(int(b) for b in body["b"]))]
    if body["k"] == "m":
        return origin, [MatrixChangedEvent(int(m)) for m in body["b"]]
    raise ValueError(f"unknown event kind {body['k']!r}")


def _clip(text: str | None) -> str | None:
    # Keeps every payload far below 8,000 bytes whatever a JWT puts in a name; reasons fit unclipped.
    if text is None or len(text) <= _HEADER_TEXT_LIMIT:
        return text
    return text[: _HEADER_TEXT_LIMIT - 1] + "…"


def _item_size(item: Any, texts: dict[Any, int]) -> int:
    """_size(item) for the items payloads carry (batch ids, [batch id, status] pairs) without encoding each:
    a settle of 86,400 batches would spend half a second in json.dumps."""
    if type(item) is int:
        return len(str(item))
    if type(item) is list and len(item) == 2 and type(item[0]) is int:
        text = item[1]
        known = texts.get(text)
        if known is None:
            known = texts[text] = _size(text)
        return len(str(item[0])) + known + 3  # [id,"status"]
    return _size(item)


def _split(items: Sequence[Any], budget: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    used = 0
    texts: dict[Any, int] = {}
    for item in items:
        cost = _item_size(item, texts) + 1
        if chunk and used + cost > budget:
            yield chunk
            chunk, used = [], 0
        chunk.append(item)
        used += cost
    if chunk:
        yield chunk


# -- the PostgreSQL backend ------------------------------------------------------------------------
_TORTOISE_ONLY_PARAMS = {"minsize", "maxsize", "max_queries", "max_inactive_connection_lifetime", "schema",
                         "connection_class", "loop"}


def asyncpg_dsn(database_url: str) -> str:
    """The database URL as asyncpg takes it (Tortoise's scheme and pool parameters removed)."""
    parts = urlsplit(database_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in _TORTOISE_ONLY_PARAMS]
    return urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), parts.fragment))


@dataclass
class PostgresEventBus(EventBus):
    dsn: str = ""
    health_interval: float = 5.0
    outbox_size: int = 10_000
    origin: str = field(default_factory=lambda: f"{os.getpid()}-{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        self._outbox: deque[str] = deque()
        self._pending = asyncio.Event()
        self._started = False
        self._runner: asyncio.Task[None] | None = None
        self._connection: Any = None
        self._lost = asyncio.Event()
        self._up = asyncio.Event()
        self._lock = asyncio.Lock()
        self._own_prefix = _dumps({"o": self.origin})[:-1] + ","  # how every payload of this process begins

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed()

    async def start(self) -> None:
        self._started = True
        self._runner = asyncio.create_task(self._run(), name="settlegraph-event-bus")
        try:
            await asyncio.wait_for(self._up.wait(), 10)
        except TimeoutError:
            log.error("event bus: no LISTEN connection yet; events of other processes are not received "
                      "until it is established")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        await self._close()

    def publish(self, events: Iterable[Event]) -> None:
        batch = list(events)
        if not batch:
            return
        super().publish(batch)
        if not self._started:
            return
        for payload in encode(self.origin, batch):
            if len(self._outbox) >= self.outbox_size:
                self._outbox.popleft()
                log.warning("event bus: outbox of %d notifications is full; the oldest was dropped",
                            self.outbox_size)
            self._outbox.append(payload)
        self._pending.set()

    # -- the connection's life --------------------------------------------------------------------
    async def _run(self) -> None:
        delay = 0.2
        first = True
        while True:
            try:
                await self._connect()
                if not first:
                    self.stats.reconnects += 1
                    log.warning("event bus: LISTEN connection re-established; events of other processes "
                                "may have been missed meanwhile")
                    self.deliver([Resync()])
                first = False
                delay = 0.2
                self._up.set()
                await self._serve()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of the connection leads to a reconnect
                log.warning("event bus: connection failed (%s); reconnecting in %.1fs", exc, delay)
            finally:
                self._up.clear()
                await self._close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _connect(self) -> None:
        import asyncpg

        self._lost.clear()
        conn = await asyncpg.connect(self.dsn, timeout=10,
                                     server_settings={"application_name": "settlegraph-events"})
        conn.add_termination_listener(lambda _conn: self._lost.set())
        await conn.add_listener(CHANNEL, self._on_notification)
        self._connection = conn

    async def _close(self) -> None:
        conn, self._connection = self._connection, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def _serve(self) -> None:
        """Send queued notifications and check the connection's health until it fails."""
        sender = asyncio.create_task(self._send_forever())
        health = asyncio.create_task(self._check_forever())
        lost = asyncio.create_task(self._lost.wait())
        try:
            done, _ = await asyncio.wait({sender, health, lost}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not lost:
                    task.result()  # raises what broke the connection
            raise ConnectionError("the LISTEN connection was closed")
        finally:
            for task in (sender, health, lost):
                task.cancel()
            for task in (sender, health, lost):
                with contextlib.suppress(BaseException):
                    await task

    async def _send_forever(self) -> None:
        while True:
            await self._pending.wait()
            self._pending.clear()
            while self._outbox:
                payloads = [self._outbox.popleft() for _ in range(min(100, len(self._outbox)))]
                try:
                    async with self._lock:
                        await asyncio.wait_for(self._connection.execute(
                            "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS n(p)", CHANNEL, payloads), 10)
                except BaseException:
                    # Not sent: back in front, for the next connection.
                    self._outbox.extendleft(reversed(payloads))
                    self._pending.set()
                    raise
                self.stats.notifications_sent += len(payloads)

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            async with self._lock:
                await asyncio.wait_for(self._connection.fetchval("SELECT 1"), self.health_interval)

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload.startswith(self._own_prefix):  # our own, delivered locally at publish: not decoded again
            return
        try:
            origin, events = decode(payload)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("event bus: ignored a malformed notification (%s)", exc)
            return
        if origin == self.origin:
            return
        self.stats.remote_received += len(events)
        self.deliver(events)


def bus_for(database_url: str, queue_size: int = DEFAULT_QUEUE_SIZE) -> EventBus:
    """PostgreSQL LISTEN/NOTIFY across processes on PostgreSQL; in-process otherwise."""
    if database_url.startswith(("postgres://", "postgresql://", "asyncpg://")):
        return PostgresEventBus(queue_size=queue_size, dsn=asyncpg_dsn(database_url))
    return EventBus(queue_size=queue_size)
