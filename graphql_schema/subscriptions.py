"""Subscriptions (SPEC §8) over graphql-transport-ws: batchStatusChanged and matrixUpdated.

Each event is resolved afresh: while a subscriber resolves an event its resolvers read a Loaders built for
that event (shared by this process's subscribers of the same event, never kept across events). A
subscriber that falls more than its queue size behind is disconnected with close code 4429 and a reason.
"""
from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info

from app import events
from graphql_schema.batches.types import Batch
from graphql_schema.context import event_loaders
from graphql_schema.enums import BatchStatus
from graphql_schema.loaders import Loaders
from graphql_schema.permissions import IsViewer

log = logging.getLogger("settlegraph.subscriptions")

_batch_models = events.BatchModels()
_event_loaders: weakref.WeakKeyDictionary[object, Loaders] = weakref.WeakKeyDictionary()


def resolving(event: object) -> None:
    """Point this operation's resolvers at the event's fresh loaders."""
    loaders = _event_loaders.get(event)
    if loaders is None:
        loaders = _event_loaders[event] = Loaders()
    event_loaders.set(loaders)


async def disconnect_slow_consumer(info: Info, overflow: events.SubscriberOverflow) -> None:
    """Close the connection with a clear reason, then wait to be cancelled when the connection ends."""
    log.warning("disconnecting a slow subscriber (%s)", info.context.actor)
    websocket: Any = info.context.request
    try:
        await websocket.close(code=events.SLOW_CONSUMER_CLOSE_CODE, reason=str(overflow)[:123])
    except Exception as exc:  # the connection may already be gone
        log.info("closing a slow subscriber failed: %s", exc)
    await asyncio.Event().wait()


@strawberry.type
class BatchStatusEvent:
    event: strawberry.Private[events.BatchStatusEvent]

    @strawberry.field
    async def batch(self, info: Info) -> Batch:
        row = await info.context.loaders.batch.load(self.event.batch_id)
        return Batch(row=row)

    @strawberry.field(name="from")
    def from_(self) -> BatchStatus | None:
        return BatchStatus(self.event.from_status) if self.event.from_status else None

    @strawberry.field
    def to(self) -> BatchStatus:
        return BatchStatus(self.event.to_status)

    @strawberry.field
    def at(self) -> datetime:
        return self.event.at

    @strawberry.field
    def actor(self) -> str | None:
        return self.event.actor

    @strawberry.field
    def reason(self) -> str | None:
        return self.event.reason


@strawberry.type
class Subscription:
    @strawberry.subscription(
        permission_classes=[IsViewer],
        description="Batch status changes after they commit, optionally only of one model or of some batches.",
    )
    async def batch_status_changed(
        self, info: Info, model: str | None = None, batch_ids: list[strawberry.ID] | None = None
    ) -> AsyncGenerator[BatchStatusEvent, None]:
        wanted = await events.batch_status_filter(model, batch_ids)
        bus: events.EventBus = info.context.bus
        sub = bus.subscribe(wanted.accepts)
        try:
            while True:
                event = await sub.next()
                if not isinstance(event, events.BatchStatusEvent):
                    continue  # a Resync: status changes missed meanwhile cannot be replayed
                if not await wanted.matches(event, _batch_models):
                    continue
                resolving(event)
                yield BatchStatusEvent(event=event)
        except events.SubscriberOverflow as overflow:
            bus.unsubscribe(sub)
            await disconnect_slow_consumer(info, overflow)
        finally:
            bus.unsubscribe(sub)
