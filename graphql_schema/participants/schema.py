"""Participant queries: live positions per currency."""
from __future__ import annotations

import strawberry

from app import participants
from graphql_schema.participants.types import Participant, ParticipantPosition
from graphql_schema.permissions import IsViewer


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsViewer])
    async def participant(self, id: str) -> Participant | None:
        positions = await participants.positions([id])
        if id not in positions:
            return None
        return Participant(id=id, positions=[ParticipantPosition.of(p) for p in positions[id]])

    @strawberry.field(permission_classes=[IsViewer])
    async def participants(self) -> list[Participant]:
        positions = await participants.positions(None)
        return [Participant(id=pid, positions=[ParticipantPosition.of(p) for p in items])
                for pid, items in sorted(positions.items())]
