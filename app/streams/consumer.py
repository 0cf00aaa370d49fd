"""`settlegraph consume` (SPEC §13): committed transfers from a JetStream stream into settlement batches.

A durable pull consumer, shared by every consume process (each fetch hands out messages no other process holds).
Each fetched batch (up to FETCH_BATCH messages, or what arrived within FETCH_WAIT) is filed through the recording
core as one call (app/batches/recording.record_transfers: validation, batch assignment, group commit, one audit
entry with the consumer as actor), and only after it committed is each message settled:
- RECORDED and DUPLICATE: acknowledged;
- REJECTED (undecodable, a field missing or malformed, unknown model, a conflict with a recorded transfer...):
  published to the dead-letter subject with its code and reason (acknowledged by the broker), then acknowledged;
- a database failure: every message of the batch is handed back (nak with a delay, growing while failures go
  on), so the broker delivers it again; nothing was committed, or, when the commit's answer was lost, the
  redelivery is a DUPLICATE. The consumer keeps running.
A consumer killed between commit and acknowledgement gets its messages delivered again: DUPLICATE, counted once.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from app.auth import Principal, Role
from app.batches.recording import REJECTED, record_transfers
from app.batches.transfers import TransferRequest
from app.core import clock, errors, metrics
from app.core.errors import DomainError
from app.core.settings import Settings
from app.streams import broker
from app.streams.messages import dead_letter, decode_transfer

log = logging.getLogger("settlegraph.streams")

FETCH_BATCH = 1_000
FETCH_WAIT = 0.1  # seconds a pull waits for the first messages when none is there (app/streams/broker.Puller)
CONCURRENCY = 2  # fetched batches filed at once by one process (each its own transaction)
MAX_ACK_PENDING = 20_000  # delivered but unacknowledged messages, across every process of the consumer
PENDING_EVERY = 5.0  # seconds between two readings of the consumer's pending count


@dataclass
class Batch:
    """What one fetched batch came to (for logs and tests)."""

    recorded: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: bool = False


class Consumer:
    def __init__(self, settings: Settings, *, batch: int = FETCH_BATCH, wait: float = FETCH_WAIT,
                 concurrency: int = CONCURRENCY) -> None:
        if not settings.nats_url:
            raise ValueError("SETTLEGRAPH_NATS_URL is not set")
        self.settings, self.batch, self.wait, self.concurrency = settings, batch, wait, max(1, concurrency)
        self.principal = Principal(f"consumer:{settings.nats_durable}", frozenset({Role.INGEST}))
        self.stopping = asyncio.Event()
        self.failures = 0  # database failures in a row

    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> None:
        s = self.settings
        assert s.nats_url
        nc = await broker.connect(s.nats_url, f"settlegraph-consume-{s.nats_durable}")
        try:
            js = nc.jetstream(timeout=10)
            sub = await self._subscribe(js)
            puller = broker.Puller(nc, s.nats_stream, s.nats_durable)
            await puller.start()
            watcher = asyncio.create_task(self._watch_pending(sub))
            log.info("consuming", extra={"stream": s.nats_stream, "subject": s.nats_subject,
                                         "durable": s.nats_durable})
            prefetch: asyncio.Task[list[Msg]] | None = None
            filing: set[asyncio.Task[Batch]] = set()
            try:
                while not self.stopping.is_set():
                    msgs = await (prefetch or self._fetch(puller))
                    prefetch = None
                    if not msgs:
                        continue
                    # The next batch is fetched while this one is filed (the broker's round trip off the path), and
                    # up to `concurrency` batches are filed at once: while one commits, the next is validated.
                    prefetch = asyncio.create_task(self._fetch(puller))
                    filing.add(asyncio.create_task(self.handle(js, msgs)))
                    if len(filing) >= self.concurrency:
                        done, filing = await asyncio.wait(filing, return_when=asyncio.FIRST_COMPLETED)
                        if any(task.result().failed for task in done):
                            await self._pause(broker.backoff(self.failures))
                if filing:  # stopping: what is being filed is finished (and acknowledged)
                    await asyncio.wait(filing)
                if prefetch is not None:  # what was fetched and not filed goes back at once
                    for msg in await prefetch:
                        with contextlib.suppress(Exception):
                            await msg.nak()
                    prefetch = None
            finally:
                if prefetch is not None:
                    prefetch.cancel()
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 5)

    async def _subscribe(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        s = self.settings
        attempt = 0
        while True:
            attempt += 1
            try:
                await broker.ensure_stream(js, s.nats_stream, [s.nats_subject])
                await broker.ensure_stream(js, s.nats_deadletter_stream, [s.nats_deadletter_subject])
                config = ConsumerConfig(durable_name=s.nats_durable, ack_policy=AckPolicy.EXPLICIT,
                                        deliver_policy=DeliverPolicy.ALL, max_deliver=-1,
                                        ack_wait=float(s.nats_ack_wait_seconds),
                                        max_ack_pending=MAX_ACK_PENDING, filter_subject=s.nats_subject)
                return await js.pull_subscribe(s.nats_subject, durable=s.nats_durable, stream=s.nats_stream,
                                               config=config)
            except Exception as exc:  # JetStream not enabled, or the server went away meanwhile
                wait = broker.backoff(attempt)
                log.error("cannot set up the durable consumer %s on stream %s (%s: %s); trying again in %.1f s",
                          s.nats_durable, s.nats_stream, type(exc).__name__, exc, wait)
                await asyncio.sleep(wait)

    async def _fetch(self, puller: broker.Puller) -> list[Msg]:
        """The next messages: up to the batch size of those there now (a backlog is filed in full batches), or else
        the first to arrive within the wait (the latency a quiet stream adds); none when nothing came or while the
        broker is away (nats-py reconnects meanwhile)."""
        try:
            return await puller.fetch(self.batch, self.wait)
        except Exception as exc:
            log.warning("fetching from %s failed (%s: %s); trying again", self.settings.nats_stream,
                        type(exc).__name__, exc)
            await self._pause(broker.backoff(1))
            return []

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _watch_pending(self, sub: JetStreamContext.PullSubscription) -> None:
        while True:
            try:
                info = await sub.consumer_info()
                metrics.CONSUMER_PENDING.set(info.num_pending or 0)
                metrics.CONSUMER_ACK_PENDING.set(info.num_ack_pending or 0)
            except Exception as exc:  # the broker is away: the next reading tries again
                log.debug("reading the consumer's pending count failed: %s", exc)
            await asyncio.sleep(PENDING_EVERY)

    async def handle(self, js: JetStreamContext, msgs: list[Msg]) -> Batch:
        """File one fetched batch, then settle each message with the broker (see the module's notes)."""
        decoded: list[TransferRequest | DomainError] = []
        for msg in msgs:
            try:
                decoded.append(decode_transfer(msg.data))
            except DomainError as exc:
                decoded.append(exc)
        requests = [d for d in decoded if isinstance(d, TransferRequest)]
        errors_by_position: dict[int, DomainError] = {}
        if requests:
            first, last = msgs[0].metadata.sequence.stream, msgs[-1].metadata.sequence.stream
            try:
                result = await record_transfers(requests, self.principal, operation="consumeTransfers",
                                                target=f"{self.settings.nats_stream} {first}-{last}")
            except Exception as exc:  # the database failed: nothing committed; the broker delivers them again
                self.failures += 1
                delay = broker.backoff(self.failures)
                log.error("filing %d transfer event(s) failed (%s: %s); handed back for redelivery in %.1f s",
                          len(msgs), type(exc).__name__, str(exc)[:200], delay)
                for msg in msgs:
                    with contextlib.suppress(Exception):
                        await msg.nak(delay=delay)
                metrics.CONSUMER_NAKS.inc(len(msgs))
                return Batch(failed=True)
            self.failures = 0
            outcomes = iter(result.outcomes)
            for position, item in enumerate(decoded):
                if isinstance(item, TransferRequest):
                    outcome = next(outcomes)
                    if outcome.outcome == REJECTED:
                        errors_by_position[position] = outcome.error or DomainError(errors.VALIDATION, "rejected")
            done = Batch(result.count("RECORDED"), result.count("DUPLICATE"))
        else:
            done = Batch()
        for position, item in enumerate(decoded):
            if isinstance(item, DomainError):
                errors_by_position[position] = item
        done.rejected = len(errors_by_position)
        for name, n in (("RECORDED", done.recorded), ("DUPLICATE", done.duplicates), (REJECTED, done.rejected)):
            if n:
                metrics.CONSUMED.labels(outcome=name).inc(n)
        for position, msg in enumerate(msgs):
            error = errors_by_position.get(position)
            if error is not None and not await self._dead_letter(js, msg, error):
                continue
            with contextlib.suppress(Exception):  # a lost acknowledgement means a redelivery: a DUPLICATE
                await msg.ack()
        return done

    async def _dead_letter(self, js: JetStreamContext, msg: Msg, error: DomainError) -> bool:
        """Publish the refused message to the dead-letter subject; False (and the message handed back) when the
        broker did not take it."""
        s, meta = self.settings, msg.metadata
        headers, body = dead_letter(msg.data, msg.headers, error, subject=msg.subject, stream=s.nats_stream,
                                    sequence=meta.sequence.stream, deliveries=meta.num_delivered,
                                    consumer=s.nats_durable, at=clock.now())
        try:
            await js.publish(s.nats_deadletter_subject, body, headers=headers)
        except Exception as exc:
            log.warning("publishing a dead letter failed (%s: %s); the message is delivered again",
                        type(exc).__name__, exc)
            with contextlib.suppress(Exception):
                await msg.nak(delay=broker.backoff(1))
            return False
        log.info("dead-lettered a transfer event", extra={"code": error.code, "reason": error.message,
                                                          "sequence": meta.sequence.stream})
        return True
