"""Participant queries: live positions per currency."""
from __future__ import annotations

import strawberry

from app import participants
from graphql_schema.context import Info
from graphql_schema.participants.types import Participant, ParticipantPosition
from graphql_schema.permissions import IsViewer, scope_of, sees


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsViewer])
    async def participant(self, info: Info, id: str) -> Participant | None:
        if not sees(info, id):
            return None
        positions = await participants.positions([id])
        if id not in positions:
            return None
        return Participant(id=id, positions=[ParticipantPosition.of(p) for p in positions[id]])

    @strawberry.field(permission_classes=[IsViewer])
    async def participants(self, info: Info) -> list[Participant]:
        scope = scope_of(info)
        positions = await participants.positions(None if scope is None else [scope])
        return [Participant(id=pid, positions=[ParticipantPosition.of(p) for p in items])
                for pid, items in sorted(positions.items())]
