"""The PostgreSQL backend of the event bus: events also travel between server processes through LISTEN/NOTIFY, on
one dedicated asyncpg connection (not the Tortoise pool) that is health-checked and re-established when lost.
Local subscribers get an event at once; other processes get it from the NOTIFY (delivered at commit), and skip
their own. What the payloads say is the codec's business (app/events/codec.py)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from app.events.bus import Event, EventBus, Resync

log = logging.getLogger("app.events")

CHANNEL = "settlegraph_events"
_TORTOISE_ONLY_PARAMS = {"minsize", "maxsize", "max_queries", "max_inactive_connection_lifetime", "schema",
                         "connection_class", "loop"}


def asyncpg_dsn(database_url: str) -> str:
    """The database URL as asyncpg takes it (Tortoise's scheme and pool parameters removed)."""
    parts = urlsplit(database_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in _TORTOISE_ONLY_PARAMS]
    return urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), parts.fragment))


class Codec(Protocol):
    """How events travel in NOTIFY payloads (app/events/codec.py): at most PAYLOAD_LIMIT bytes each."""

    def encode(self, origin: str, events: Sequence[Event]) -> list[str]: ...

    def decode(self, payload: str) -> tuple[str, list[Event]]: ...

    def origin_prefix(self, origin: str) -> str:
        """How every payload of `origin` begins (a process skips its own without decoding them)."""
        ...


@dataclass
class PostgresEventBus(EventBus):
    codec: Codec | None = None
    dsn: str = ""
    health_interval: float = 5.0
    outbox_size: int = 10_000
    origin: str = field(default_factory=lambda: f"{os.getpid()}-{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        self._outbox: deque[str] = deque()
        self._received: deque[str] = deque()  # notifications of other processes, not delivered yet
        self._receiver: asyncio.Task[None] | None = None
        self._pending = asyncio.Event()
        self._started = False
        self._runner: asyncio.Task[None] | None = None
        self._connection: Any = None
        self._lost = asyncio.Event()
        self._up = asyncio.Event()
        self._lock = asyncio.Lock()
        assert self.codec is not None, "a PostgresEventBus needs the codec of the events it carries"
        self._codec: Codec = self.codec
        self._own_prefix = self._codec.origin_prefix(self.origin)

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
        if self._receiver is not None:
            self._receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._receiver
        await self._close()

    def publish(self, events: Iterable[Event]) -> None:
        batch = list(events)
        if not batch:
            return
        super().publish(batch)
        if not self._started:
            return
        for payload in self._codec.encode(self.origin, batch):
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
        # A commit's notifications arrive together (a day's settlement: ~90 of them, each ~1,000 events to decode and
        # deliver); all decoded in this callback, they held the loop ~75 ms. They are received one a turn, in order.
        if payload.startswith(self._own_prefix):  # our own, delivered locally at publish: not decoded again
            return
        if not self.subscribers:  # nobody here to tell (a process serving clearing only): nothing to decode
            return
        self._received.append(payload)
        if self._receiver is None or self._receiver.done():
            self._receiver = asyncio.get_running_loop().create_task(self._receive(), name="settlegraph-event-receive")

    async def _receive(self) -> None:
        while self._received:
            payload = self._received.popleft()
            if not self.subscribers:  # the last one left meanwhile
                continue
            try:
                origin, events = self._codec.decode(payload)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("event bus: ignored a malformed notification (%s)", exc)
                continue
            if origin != self.origin:
                self.stats.remote_received += len(events)
                self.deliver(events)
            await asyncio.sleep(0)
