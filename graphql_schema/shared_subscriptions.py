"""Identical subscriptions share their execution (SPEC §8, at scale).

Subscribers of one process that sent the same document with the same variables and hold the same roles get the
same answer for every event, so `SharedSubscriptions` (mixed into the schema) runs that subscription once and
hands each event's result to all of them (a thousand dashboards watching batch statuses cost one execution per
event, not a thousand). Each subscriber keeps its own bounded queue of results; one that falls more than its queue
size behind is disconnected with close code 4429 and a reason.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Any

from graphql import OperationDefinitionNode, OperationType, parse
from graphql.error import GraphQLError
from strawberry.types.execution import ExecutionResult

from app.events.bus import SubscriberOverflow
from graphql_schema.loaders import Loaders
from graphql_schema.subscriptions import disconnect_slow_consumer

log = logging.getLogger("settlegraph.subscriptions")

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
            self.queue.put_nowait(SubscriberOverflow(self.queue.maxsize))
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
               tuple(sorted(r.value for r in principal.roles)), principal.scope)  # a participant sees its own
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
                if isinstance(item, SubscriberOverflow):
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
