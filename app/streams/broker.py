"""Reaching the NATS server and the JetStream streams settlegraph uses (SPEC §13): connecting with a clear message
and a back-off while it cannot be reached, and creating a stream that is missing (an existing one is left as its
operator configured it)."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

log = logging.getLogger("settlegraph.streams")

BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0
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
