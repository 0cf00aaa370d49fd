"""Subscriptions (SPEC §8) over graphql-transport-ws: batchStatusChanged and matrixUpdated.

Each event is resolved afresh: its resolvers read a Loaders built for that event, never kept across events.
Identical subscriptions share one execution (graphql_schema/shared_subscriptions.py).
"""
from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from starlette.websockets import WebSocket

from app.batches.status import StatusChange
from app.core import errors
from app.core.checks import parse_id
from app.core.errors import DomainError
from app.events import watchers
from app.events.bus import EventBus, SubscriberOverflow
from app.matrices import reports
from app.matrices.rules import MatrixStatus
from graphql_schema.batches.types import Batch, StatusChangeFields, load_batch
from graphql_schema.context import Info, event_loaders
from graphql_schema.loaders import Loaders
from graphql_schema.matrices.types import SettlementMatrix
from graphql_schema.permissions import IsViewer

log = logging.getLogger("settlegraph.subscriptions")

_batch_models = watchers.BatchModels()
_event_loaders: weakref.WeakKeyDictionary[object, Loaders] = weakref.WeakKeyDictionary()


def resolving(event: object) -> None:
    """Point this operation's resolvers at the event's fresh loaders."""
    loaders = _event_loaders.get(event)
    if loaders is None:
        loaders = _event_loaders[event] = Loaders()
    event_loaders.set(loaders)


async def disconnect_slow_consumer(context: Any, overflow: SubscriberOverflow) -> None:
    """Close the connection with a clear reason, then wait to be cancelled when the connection ends."""
    websocket: Any = context.request
    if not isinstance(websocket, WebSocket):
        # A shared execution that fell behind the bus (its subscribers get the error), or a stream over HTTP.
        raise overflow
    log.warning("disconnecting a slow subscriber (%s)", context.actor)
    try:
        await websocket.close(code=SLOW_CONSUMER_CLOSE_CODE, reason=str(overflow)[:123])
    except Exception as exc:  # the connection may already be gone
        log.info("closing a slow subscriber failed: %s", exc)
    await asyncio.Event().wait()


# Slow subscribers are closed with this code and a reason (graphql-transport-ws leaves 4400-4499 to the server;
# 4429 reads as "too many messages for you").
SLOW_CONSUMER_CLOSE_CODE = 4429


async def _event_batch(root: _EventBatch, info: Info) -> Batch:
    batch = await load_batch(info, root.batch_id)
    assert batch is not None
    return batch


@strawberry.type
class _EventBatch:
    batch_id: strawberry.Private[int]
    batch: Batch = strawberry.field(resolver=_event_batch)


@strawberry.type
class BatchStatusEvent(_EventBatch, StatusChangeFields):
    """A batch status change as subscribers receive it: the batch, then the same fields as its history."""

    @classmethod
    def of(cls, change: StatusChange) -> BatchStatusEvent:
        return cls(**cls.fields_of(change), batch_id=change.batch_id)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        permission_classes=[IsViewer],
        description="Batch status changes after they commit, optionally only of one model or of some batches.",
    )
    async def batch_status_changed(
        self, info: Info, model: str | None = None, batch_ids: list[strawberry.ID] | None = None
    ) -> AsyncGenerator[BatchStatusEvent, None]:
        wanted = await watchers.batch_status_filter(model, batch_ids)
        bus: EventBus = info.context.bus
        sub = bus.subscribe(wanted.accepts)
        try:
            while True:
                event = await sub.next()
                if not isinstance(event, StatusChange):
                    continue  # a Resync: status changes missed meanwhile cannot be replayed
                if not await wanted.matches(event, _batch_models):
                    continue
                resolving(event)
                yield BatchStatusEvent.of(event)
        except SubscriberOverflow as overflow:
            bus.unsubscribe(sub)
            await disconnect_slow_consumer(info.context, overflow)
        finally:
            bus.unsubscribe(sub)

    @strawberry.subscription(
        permission_classes=[IsViewer],
        description="The matrix's live totals whenever its content changes (at most a few times a second); "
                    "ends after the final state of a SETTLED matrix.",
    )
    async def matrix_updated(self, info: Info, id: strawberry.ID) -> AsyncGenerator[SettlementMatrix, None]:
        matrix_id = parse_id(id, "id")
        row = await reports.get(matrix_id)
        if row is None:
            raise DomainError(errors.NOT_FOUND, f"no matrix {id}", ["id"])
        if row.status == MatrixStatus.SETTLED:
            event_loaders.set(Loaders())
            yield SettlementMatrix.of(row)
            return
        watch = watchers.MatrixWatch(info.context.bus, matrix_id)
        try:
            while True:
                await watch.changed()
                row = await reports.get(matrix_id)
                if row is None:
                    return
                event_loaders.set(Loaders())  # every push reads the totals afresh
                yield SettlementMatrix.of(row)
                if row.status == MatrixStatus.SETTLED:
                    return
        except SubscriberOverflow as overflow:
            watch.close()
            await disconnect_slow_consumer(info.context, overflow)
        finally:
            watch.close()
