"""The outbox relay (SPEC §13): publishes the outbox's change sets (app/db/outbox.py) to the event stream, in id
order (= commit order), and deletes each row only once the broker acknowledged every message of it.

- One relay at a time: on PostgreSQL each round runs in a transaction that first takes a transaction-level
  advisory lock (pg_try_advisory_xact_lock); a server's other workers, or a `settlegraph relay` beside it, find
  it taken and skip the round. It is released at commit, or when the connection dies with its process. SQLite
  serves one process: one relay (do not run `settlegraph relay` beside a SQLite server).
- A row becomes one message per batch (`<prefix>.batch.<status>`) or one matrix event
  (`<prefix>.matrix.<event>`), each with `Nats-Msg-Id: <row id>@<written, µs>:<n>`: a relay that crashed after
  publishing and before deleting publishes the row again after restart, and the stream's duplicate window drops
  what it already stored (the time keeps the ids new after a database restore restarts the row ids).
- Rows are published one after the other, each one's acknowledgements awaited before the next, so a batch's
  changes (which can only lie in different rows) reach the stream in order even when a publish is retried.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from tortoise.transactions import in_transaction

from app.core import metrics
from app.core.settings import Settings
from app.db import connection as database
from app.db.dialect import POSTGRES, dialect_of
from app.db.outbox import OutboxStore, Row
from app.streams import broker
from app.streams.messages import MSG_ID, outbox_messages

log = logging.getLogger("settlegraph.streams")

ROWS_PER_ROUND = 500
ACK_TIMEOUT = 30.0  # seconds to wait for the broker's acknowledgements of one row's messages
DUPLICATE_WINDOW = 600.0  # seconds the events stream remembers message ids (created by the relay if missing)


class Relay:
    def __init__(self, settings: Settings) -> None:
        if not settings.nats_url:
            raise ValueError("SETTLEGRAPH_NATS_URL is not set")
        self.settings = settings
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None

    async def _jetstream(self) -> JetStreamContext:
        if self.js is None:
            s = self.settings
            assert s.nats_url
            self.nc = await broker.connect(s.nats_url, "settlegraph-relay")
            js = self.nc.jetstream(timeout=10)
            await broker.ensure_stream(js, s.nats_events_stream, [f"{s.nats_events_prefix}.>"],
                                       duplicate_window=DUPLICATE_WINDOW)
            self.js = js
        return self.js

    async def close(self) -> None:
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), 5)
        self.nc = self.js = None

    async def drain(self) -> int:
        """Relay until the outbox is empty (or another process holds the relay); the number of rows relayed."""
        total = 0
        while True:
            done = await self.round()
            total += done
            if done < ROWS_PER_ROUND:
                return total

    async def round(self) -> int:
        """Publish and delete the first ROWS_PER_ROUND rows; the number relayed (0: nothing to do, or another
        process is the relay)."""
        js = await self._jetstream()
        if dialect_of(database.connection()) == POSTGRES:
            async with in_transaction() as conn:
                store = OutboxStore.on(conn)
                if not await store.take_relay_lock():
                    return 0
                return await self._relay(js, store)
        # SQLite: no transaction around the publishing (it would hold the one write lock meanwhile).
        return await self._relay(js, OutboxStore.on(database.connection()))

    async def _relay(self, js: JetStreamContext, store: OutboxStore) -> int:
        rows = await store.first(ROWS_PER_ROUND)
        metrics.OUTBOX_BACKLOG.set(len(rows) if len(rows) < ROWS_PER_ROUND else await store.backlog())
        for row in rows:
            await self._publish(js, row)
        if rows:
            await store.delete([r.id for r in rows])
        return len(rows)

    async def _publish(self, js: JetStreamContext, row: Row) -> None:
        prefix = self.settings.nats_events_prefix
        futures: list[asyncio.Future[Any]] = []
        for n, message in enumerate(outbox_messages(row.key, row.kind, row.payload, prefix), 1):
            futures.append(await js.publish_async(message.subject, message.data, headers={MSG_ID: message.msg_id}))
            if n % 5_000 == 0:
                await asyncio.sleep(0)
        try:
            await asyncio.wait_for(asyncio.gather(*futures), ACK_TIMEOUT)
        finally:
            for future in futures:  # an abandoned round leaves no exception unretrieved
                if not future.done():
                    future.cancel()
        metrics.RELAYED.inc(len(futures))


async def run(settings: Settings, stopping: asyncio.Event, every: float = 0.2) -> None:
    """`settlegraph relay`: relay until stopped, looking for new rows every `every` seconds."""
    relay = Relay(settings)
    failures = 0
    try:
        while not stopping.is_set():
            try:
                await relay.drain()
                failures = 0
                wait = every
            except Exception as exc:  # the broker or the database is away: the next round tries again
                failures += 1
                wait = broker.backoff(failures)
                log.warning("relaying the outbox failed (%s: %s); trying again in %.1f s", type(exc).__name__,
                            str(exc)[:200], wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), wait)
    finally:
        await relay.close()


async def backlog() -> None:
    """Keep the backlog gauge current where no relay runs (no NATS configured): the outbox keeps every row until
    a relay can publish it, and this is how an operator sees it grow."""
    metrics.OUTBOX_BACKLOG.set(await OutboxStore.on(database.connection()).backlog())
