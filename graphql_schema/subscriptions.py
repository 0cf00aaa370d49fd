"""Subscriptions (SPEC §8) over graphql-transport-ws: batchStatusChanged and matrixUpdated.

Each event is resolved afresh: its resolvers read a Loaders built for that event, never kept across events.

Identical subscriptions share their execution: subscribers of one process that sent the same document with the
same variables and hold the same roles get the same answer for every event, so `SharedSubscriptions` runs
that subscription once and hands each event's result to all of them (a thousand dashboards watching batch
statuses cost one execution per event, not a thousand). Each subscriber keeps its own bounded queue of
results; one that falls more than its queue size behind is disconnected with close code 4429 and a reason.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from functools import lru_cache
from typing import Any

import strawberry
from graphql import OperationDefinitionNode, OperationType, parse
from graphql.error import GraphQLError
from starlette.websockets import WebSocket
from strawberry.types import Info
from strawberry.types.execution import ExecutionResult

from app import errors, events, matrices
from app.batches import parse_id
from app.errors import DomainError
from graphql_schema.batches.types import Batch
from graphql_schema.context import event_loaders
from graphql_schema.enums import BatchStatus
from graphql_schema.loaders import Loaders
from graphql_schema.matrices.types import SettlementMatrix
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


async def disconnect_slow_consumer(context: Any, overflow: events.SubscriberOverflow) -> None:
    """Close the connection with a clear reason, then wait to be cancelled when the connection ends."""
    websocket: Any = context.request
    if not isinstance(websocket, WebSocket):
        # A shared execution that fell behind the bus (its subscribers get the error), or a stream over HTTP.
        raise overflow
    log.warning("disconnecting a slow subscriber (%s)", context.actor)
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
        row = await matrices.get(matrix_id)
        if row is None:
            raise DomainError(errors.NOT_FOUND, f"no matrix {id}", ["id"])
        if row.status == matrices.MatrixStatus.SETTLED:
            event_loaders.set(Loaders())
            yield SettlementMatrix(row=row)
            return
        watch = events.MatrixWatch(info.context.bus, matrix_id)
        try:
            while True:
                await watch.changed()
                row = await matrices.get(matrix_id)
                if row is None:
                    return
                event_loaders.set(Loaders())  # every push reads the totals afresh
                yield SettlementMatrix(row=row)
                if row.status == matrices.MatrixStatus.SETTLED:
                    return
        except events.SubscriberOverflow as overflow:
            watch.close()
            await disconnect_slow_consumer(info.context, overflow)
        finally:
            watch.close()


# -- one execution per distinct subscription and event, in this process --------------------------
_END = object()


@dataclasses.dataclass(eq=False)
class _Listener:
    queue: asyncio.Queue[Any]
    overflowed: bool = False

    def offer(self, result: Any) -> bool:
        if self.overflowed:
            return False
        try:
            self.queue.put_nowait(result)
            return True
        except asyncio.QueueFull:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(events.SubscriberOverflow(self.queue.maxsize))
            return False

    def end(self) -> None:
        if not self.overflowed:
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(_END)
                return
            self.offer(_END)  # full: it cannot keep up anyway


@dataclasses.dataclass(eq=False)
class _SharedStream:
    key: tuple[Any, ...]
    listeners: set[_Listener] = dataclasses.field(default_factory=set)
    task: asyncio.Task[None] | None = None
    snapshot: bool = False
    last_data: Any = None


# Subscriptions that push a state rather than an event: an answer equal to the previous one is not sent again.
SNAPSHOT_FIELDS = frozenset({"matrixUpdated"})


@lru_cache(maxsize=512)
def _subscription_fields(query: str, operation_name: str | None) -> frozenset[str] | None:
    """The root fields of the operation when it is a subscription; None otherwise."""
    try:
        document = parse(query)
    except GraphQLError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [d for d in operations if operation_name is None or (d.name and d.name.value == operation_name)]
    if len(chosen) != 1 or chosen[0].operation is not OperationType.SUBSCRIPTION:
        return None
    return frozenset(getattr(getattr(s, "name", None), "value", "") for s in chosen[0].selection_set.selections)


class SharedSubscriptions:
    """Mixed into the Strawberry schema: subscription operations are executed once per distinct
    (document, variables, operation name, roles) and their results fanned out to every subscriber."""

    _shared: dict[tuple[Any, ...], _SharedStream]

    async def execute(  # type: ignore[no-untyped-def]
        self, query, variable_values=None, context_value=None, root_value=None, operation_name=None,
        allowed_operation_types=None, operation_extensions=None,
    ):
        """A subscription sent as a plain HTTP request is answered with where to subscribe."""
        if query is not None and _subscription_fields(query, operation_name):
            return ExecutionResult(data=None, errors=[GraphQLError(
                "subscriptions are served over WebSocket (graphql-transport-ws) at /graphql",
                extensions={"code": "BAD_REQUEST"})])
        return await super().execute(  # type: ignore[misc]
            query, variable_values, context_value, root_value, operation_name, allowed_operation_types,
            operation_extensions)

    async def stream(  # type: ignore[no-untyped-def]
        self, query, variable_values=None, context_value=None, root_value=None, operation_name=None,
        operation_extensions=None, allowed_operation_types=None,
    ):
        principal = getattr(context_value, "principal", None)
        fields = _subscription_fields(query, operation_name) if query is not None else None
        if principal is None or root_value is not None or operation_extensions or not fields:
            return await super().stream(  # type: ignore[misc]
                query, variable_values, context_value, root_value, operation_name, operation_extensions,
                allowed_operation_types)
        key = (query, json.dumps(variable_values or {}, sort_keys=True, default=str), operation_name,
               tuple(sorted(r.value for r in principal.roles)))
        return self._listen(key, query, variable_values, context_value, operation_name, allowed_operation_types,
                            fields <= SNAPSHOT_FIELDS)

    async def _listen(self, key: tuple[Any, ...], query: str, variables: Any, context: Any,
                      operation_name: str | None, allowed: Any, snapshot: bool) -> AsyncIterator[Any]:
        shared_streams = self.__dict__.setdefault("_shared", {})
        shared = shared_streams.get(key)
        listener = _Listener(asyncio.Queue(context.bus.queue_size))
        if shared is None:
            shared = shared_streams[key] = _SharedStream(key, {listener}, snapshot=snapshot)
            # The shared execution has no connection of its own; its context carries the first subscriber's
            # principal (the same roles as everyone's in it) and fresh loaders.
            shared_context = dataclasses.replace(context, request=None, response=None,
                                                 request_loaders=Loaders())
            source = await super().stream(  # type: ignore[misc]
                query, variables, shared_context, None, operation_name, None, allowed)
            shared.task = asyncio.create_task(self._run(shared, source), name="settlegraph-shared-subscription")
        else:
            shared.listeners.add(listener)
        try:
            while True:
                item = await listener.queue.get()
                if item is _END:
                    return
                if isinstance(item, events.SubscriberOverflow):
                    await disconnect_slow_consumer(context, item)
                yield item
        finally:
            self._leave(shared, listener)

    async def _run(self, shared: _SharedStream, source: AsyncIterator[Any]) -> None:
        try:
            async with contextlib.aclosing(source):  # type: ignore[type-var]
                async for result in source:
                    self._fan_out(shared, result)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("a shared subscription failed")
        finally:
            if self._current(shared):
                self.__dict__["_shared"].pop(shared.key, None)
            for listener in list(shared.listeners):
                listener.end()

    def _current(self, shared: _SharedStream) -> bool:
        return self.__dict__.get("_shared", {}).get(shared.key) is shared

    @staticmethod
    def _fan_out(shared: _SharedStream, result: ExecutionResult) -> None:
        if shared.snapshot and not result.errors:
            if result.data == shared.last_data:
                return
            shared.last_data = result.data
        for listener in list(shared.listeners):
            if not listener.offer(result):
                shared.listeners.discard(listener)

    def _leave(self, shared: _SharedStream, listener: _Listener) -> None:
        shared.listeners.discard(listener)
        if not shared.listeners:
            if self._current(shared):
                self.__dict__["_shared"].pop(shared.key, None)
            if shared.task is not None and not shared.task.done():
                shared.task.cancel()

    def listener_queue_sizes(self) -> list[int]:
        """The queue size of every subscriber still listening (for tests and diagnostics)."""
        return [listener.queue.maxsize for s in self.__dict__.get("_shared", {}).values() for listener in s.listeners]
