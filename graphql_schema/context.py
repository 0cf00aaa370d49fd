"""The typed per-request context: who is calling, fresh loaders, settings, the event bus."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import strawberry

from app.auth import Principal
from app.batches.recording import TransfersFiled
from app.batches.status import StatusChange
from app.core.settings import Settings
from app.events.bus import EventBus
from app.matrices.commands import MatrixChanged
from graphql_schema.loaders import Loaders

# A WebSocket connection keeps one context for its whole life; while a subscription resolves an event, its
# resolvers read that event's fresh loaders instead (set per operation task by graphql_schema.subscriptions).
event_loaders: ContextVar[Loaders | None] = ContextVar("event_loaders", default=None)


@dataclass
class Context:
    settings: Settings
    bus: EventBus
    principal: Principal | None
    auth_failure: str | None = None
    request: Any = None
    response: Any = None
    request_loaders: Loaders = field(default_factory=Loaders)
    connection_params: dict[str, Any] | None = None

    @property
    def loaders(self) -> Loaders:
        return event_loaders.get() or self.request_loaders

    @property
    def actor(self) -> str:
        return self.principal.name if self.principal else "anonymous"

    # Publishing runs on later turns of the event loop, in call order and in slices (app/events/bus.py): the
    # caller's answer is not held up by it, it still follows the commit, and it never holds the loop for long.
    def published(self, changes: Sequence[StatusChange] = (), filed: Iterable[int] = (),
                  matrix_id: int | None = None) -> None:
        """Publish what a committed command changed: batch status changes, transfers filed into batches, a
        command on a matrix. Call only after the transaction that made them has committed."""
        events: list[Any] = list(changes)
        totals = TransfersFiled.of(set(filed))
        if totals is not None:
            events.append(totals)
        if matrix_id is not None:
            events.append(MatrixChanged(matrix_id))
        self.bus.publish_committed(events)


Info: TypeAlias = strawberry.Info[Context, None]
