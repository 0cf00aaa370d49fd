"""Queries and mutations of single batches."""
from __future__ import annotations

import strawberry

from app.batches import lifecycle, lookups
from app.batches.status import Action
from graphql_schema.batches.types import Batch, BatchConnection, BatchFilter, BatchPayload, BatchRef, batch_connection
from graphql_schema.context import Info
from graphql_schema.errors import mutation
from graphql_schema.idempotency import IdempotencyKey
from graphql_schema.permissions import IsOperator, IsViewer
from models.settlement import Batch as BatchRow


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsViewer])
    async def batch(self, ref: BatchRef) -> Batch | None:
        row = await lookups.find(ref.to_app())
        return Batch.of(row) if row else None

    @strawberry.field(permission_classes=[IsViewer])
    async def batches(
        self, info: Info, filter: BatchFilter | None = None, first: int | None = 50, after: str | None = None
    ) -> BatchConnection:
        return await batch_connection(info, filter, first, after)


async def _transition(info: Info, ref: BatchRef, action: Action, reason: str | None) -> BatchPayload:
    batch_id, change = await lifecycle.change_status(ref.to_app(), action, info.context.principal, reason)
    info.context.published([change])
    return BatchPayload(batch=Batch.of(await BatchRow.get(id=batch_id)))


@strawberry.type
class Mutation:
    @mutation(permission_classes=[IsOperator])
    async def close_batch(self, info: Info, ref: BatchRef, reason: str | None = None,
                          idempotency_key: IdempotencyKey = None) -> BatchPayload:
        return await _transition(info, ref, Action.CLOSE, reason)

    @mutation(permission_classes=[IsOperator])
    async def dispute_batch(self, info: Info, ref: BatchRef, reason: str | None = None,
                            idempotency_key: IdempotencyKey = None) -> BatchPayload:
        return await _transition(info, ref, Action.DISPUTE, reason)

    @mutation(permission_classes=[IsOperator])
    async def resolve_batch_dispute(self, info: Info, ref: BatchRef, reason: str | None = None,
                                    idempotency_key: IdempotencyKey = None) -> BatchPayload:
        return await _transition(info, ref, Action.RESOLVE, reason)
