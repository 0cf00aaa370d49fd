"""The typed per-request context: who is calling, fresh loaders, settings, the event bus."""
from __future__ import annotations

import asyncio
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from app.auth import Principal
from app.batch_lifecycle import StatusChange
from app.events import EventBus
from app.settings import Settings
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

    # Publishing runs on the event loop's next turn, in call order: the caller's answer is not held up by it
    # (a settle of 86,400 batches publishes for a third of a second), and it still follows the commit.
    def publish_status_changes(self, changes: Iterable[StatusChange]) -> None:
        """Call only after the transaction that made the changes has committed."""
        asyncio.get_running_loop().call_soon(self.bus.publish_status_changes, list(changes))

    def publish_batch_totals(self, batch_ids: Iterable[int]) -> None:
        asyncio.get_running_loop().call_soon(self.bus.publish_batch_totals, list(batch_ids))

    def publish_matrix_changed(self, matrix_id: int) -> None:
        """After a committed command that changed the matrix itself (status, STATIC batches)."""
        asyncio.get_running_loop().call_soon(self.bus.publish_matrix_changed, matrix_id)
