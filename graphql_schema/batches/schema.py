"""Queries and mutations of single batches."""
from __future__ import annotations

import strawberry
from strawberry.types import Info

from app import batches as batch_queries
from app.batch_lifecycle import Action
from app.errors import DomainError
from graphql_schema.audit import audited
from graphql_schema.batches.types import (
    Batch,
    BatchConnection,
    BatchFilter,
    BatchPayload,
    BatchRef,
    batch_connection,
)
from graphql_schema.errors import UserError
from graphql_schema.permissions import IsOperator, IsViewer
from models.settlement import Batch as BatchRow


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsViewer])
    async def batch(self, ref: BatchRef) -> Batch | None:
        row = await batch_queries.find(ref.to_app())
        return Batch(row=row) if row else None

    @strawberry.field(permission_classes=[IsViewer])
    async def batches(
        self, info: Info, filter: BatchFilter | None = None, first: int | None = 50, after: str | None = None
    ) -> BatchConnection:
        return await batch_connection(info, filter, first, after)


async def _transition(info: Info, operation: str, ref: BatchRef, action: Action, reason: str | None) -> BatchPayload:
    target = ref.id or ref.name or ref.transfer_id
    async with audited(info, operation, target) as audit:
        try:
            batch_id, change = await batch_queries.change_status(ref.to_app(), action, info.context.actor, reason)
        except DomainError as exc:
            return audit.refused(BatchPayload(user_errors=[UserError.of(exc)]))
        info.context.publish_status_changes([change])
        row = await BatchRow.get(id=batch_id)
        return BatchPayload(batch=Batch(row=row))


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=[IsOperator])
    async def close_batch(self, info: Info, ref: BatchRef, reason: str | None = None) -> BatchPayload:
        return await _transition(info, "closeBatch", ref, Action.CLOSE, reason)

    @strawberry.mutation(permission_classes=[IsOperator])
    async def dispute_batch(self, info: Info, ref: BatchRef, reason: str | None = None) -> BatchPayload:
        return await _transition(info, "disputeBatch", ref, Action.DISPUTE, reason)

    @strawberry.mutation(permission_classes=[IsOperator])
    async def resolve_batch_dispute(self, info: Info, ref: BatchRef, reason: str | None = None) -> BatchPayload:
        return await _transition(info, "resolveBatchDispute", ref, Action.RESOLVE, reason)
