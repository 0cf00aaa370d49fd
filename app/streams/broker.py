"""Reaching the NATS server and the JetStream streams settlegraph uses (SPEC §13): connecting with a clear message
and a back-off while it cannot be reached, and creating a stream that is missing (an existing one is left as its
operator configured it)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

log = logging.getLogger("settlegraph.streams")

BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0
PULL_GRACE = 2.0  # seconds a pull is waited for beyond its own wait (the server ends it; this guards a lost link)
STATUS, HEARTBEAT = "Status", "100"
ERRORS_EVERY = 10.0  # seconds between two logged connection errors while reconnecting


def backoff(attempt: int) -> float:
    """Seconds to wait before attempt `attempt` (1, 2, ...) of something that failed: 0.5 s doubling to 10 s."""
    return float(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(attempt - 1, 0)))


async def connect(url: str, name: str) -> Client:
    """Connect, retrying with a back-off (and saying why) until the server answers; once connected, nats-py
    reconnects by itself, for ever, after a broker restart (logged here, at most every ERRORS_EVERY seconds)."""
    holder: list[Client] = []
    errors_logged = [0.0]

    async def disconnected() -> None:
        if holder and (holder[0].is_closed or holder[0].is_draining):
            return  # closing on purpose
        log.warning("lost the connection to the NATS server at %s; reconnecting", url)

    async def reconnected() -> None:
        log.warning("reconnected to the NATS server at %s", url)

    async def error(exc: Exception) -> None:
        now = time.monotonic()
        if holder and now - errors_logged[0] >= ERRORS_EVERY:  # before the first connection: said below
            errors_logged[0] = now
            log.warning("NATS server at %s: %s: %s", url, type(exc).__name__, exc)

    attempt = 0
    while True:
        attempt += 1
        try:
            # Two tries, then back here (nats-py would otherwise retry the first connection for ever, silently).
            client = await nats.connect(url, name=name, max_reconnect_attempts=1, reconnect_time_wait=0.5,
                                        connect_timeout=2, allow_reconnect=True, disconnected_cb=disconnected,
                                        reconnected_cb=reconnected, error_cb=error)
        except Exception as exc:  # any reason it cannot connect: say so, wait, try again
            wait = backoff(attempt)
            log.error("cannot reach the NATS server at %s (%s: %s); trying again in %.1f s", url,
                      type(exc).__name__, exc or "no server answered", wait)
            await asyncio.sleep(wait)
            continue
        # Connected: from now on a lost connection is retried without end (nats-py reads this option each time).
        client.options["max_reconnect_attempts"] = -1
        holder.append(client)
        return client


async def ensure_stream(js: JetStreamContext, name: str, subjects: list[str], **config: Any) -> None:
    """Create the stream `name` capturing `subjects` (file storage) unless it exists."""
    try:
        await js.stream_info(name)
        return
    except NotFoundError:
        pass
    await js.add_stream(StreamConfig(name=name, subjects=subjects, storage=StorageType.FILE, **config))
    log.info("created the JetStream stream %s for %s", name, ", ".join(subjects))


class Puller:
    """Batches of a durable pull consumer's messages, delivered to a callback on an inbox of this connection.

    nats-py's `fetch` waits for each message of a batch with a timeout of its own (an asyncio task per message):
    half the consumer's CPU at 1,000 messages a batch. Here messages are appended as they arrive, and a pull
    ends when its batch is full, when the server ends it (a status message on its reply subject: 404 nothing
    more, 408 expired, 409 ...), or after its wait. A pull first asks for what is there now (no_wait) and, only
    when nothing is, waits up to `wait` seconds for the first messages, and returns with them (and whatever else
    arrived in the same read) rather than waiting for a full batch: a quiet stream's events are filed at once.

    Delivered messages carry their stream subject, not the pull they answer: each goes to the oldest pull still
    waiting, or, when none is (a late answer), to the next one. Every message is leased to this consumer until it
    is acknowledged or handed back, so none is dropped here."""

    def __init__(self, nc: Client, stream: str, durable: str) -> None:
        self.nc, self.subject = nc, f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.prefix = nc.new_inbox()
        self.pulls: dict[str, _Pull] = {}  # waiting pulls by reply subject, oldest first
        self.spare: list[Msg] = []  # arrived while no pull was waiting
        self.count = 0

    async def start(self) -> None:
        await self.nc.subscribe(f"{self.prefix}.*", cb=self._arrived)

    async def fetch(self, batch: int, wait: float) -> list[Msg]:
        msgs = await self._pull(batch, None)
        if msgs:
            return msgs
        return await self._pull(batch, wait)

    async def _pull(self, batch: int, wait: float | None) -> list[Msg]:
        pull = _Pull(batch, eager=wait is not None)
        pull.msgs, self.spare = self.spare[:batch], self.spare[batch:]
        if len(pull.msgs) >= batch:
            return pull.msgs
        self.count += 1
        reply = f"{self.prefix}.{self.count}"
        self.pulls[reply] = pull
        request: dict[str, Any] = {"batch": batch - len(pull.msgs)}
        if wait is None:
            request["no_wait"] = True
        else:
            request["expires"] = int(wait * 1_000_000_000)
        try:
            await self.nc.publish(self.subject, json.dumps(request).encode(), reply=reply)
            # The server ends the pull; the timeout only guards a lost connection.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pull.done.wait(), (wait or 0.0) + PULL_GRACE)
        finally:
            del self.pulls[reply]
        return pull.msgs

    async def _arrived(self, msg: Msg) -> None:
        status = msg.headers.get(STATUS) if msg.headers else None
        if status:
            ended = self.pulls.get(msg.subject)
            if ended is not None and status != HEARTBEAT:
                ended.done.set()
            return
        for pull in self.pulls.values():
            if not pull.done.is_set():
                pull.msgs.append(msg)
                if len(pull.msgs) >= pull.batch:
                    pull.done.set()
                elif pull.eager and len(pull.msgs) == 1:  # the first: end after this turn's other arrivals
                    asyncio.get_running_loop().call_soon(pull.done.set)
                return
        self.spare.append(msg)


class _Pull:
    __slots__ = ("batch", "done", "eager", "msgs")

    def __init__(self, batch: int, eager: bool = False) -> None:
        self.batch, self.done, self.eager = batch, asyncio.Event(), eager
        self.msgs: list[Msg] = []
