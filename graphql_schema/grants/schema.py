"""Queries and mutations of payment grants and prepared transfers (SPEC §9): parse, call app/grants, shape the
answer. Refusals are raised by the domain commands (which audit every outcome) and answered as userErrors by
graphql_schema/errors.py."""
from __future__ import annotations

from datetime import datetime

import strawberry

from app.grants import grants, reconciliation, reservations
from app.grants.reservations import Completion
from graphql_schema.context import Info
from graphql_schema.errors import mutation
from graphql_schema.grants.types import (
    Grant,
    GrantInput,
    GrantPayload,
    GrantReconciliation,
    GrantReconciliationPayload,
    PreparedTransfer,
    PreparedTransferPayload,
    PrepareTransferInput,
)
from graphql_schema.idempotency import IdempotencyKey
from graphql_schema.permissions import IsIngest, IsOperator, IsViewer, sees
from graphql_schema.scalars import Amount


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsViewer])
    async def grant(self, info: Info, id: strawberry.ID) -> Grant | None:
        number = grants.grant_number(id)
        found = await info.context.loaders.grant_spent.load(number) if number is not None else None
        return Grant.of(found.grant) if found and sees(info, found.grant.payer_id) else None  # its own grants

    @strawberry.field(permission_classes=[IsViewer])
    async def prepared_transfer(self, info: Info, transfer_id: str) -> PreparedTransfer | None:
        row = await reservations.find_prepared(transfer_id)
        return PreparedTransfer.of(row) if row and sees(info, row.payer_id, row.payee_id) else None


def _published(info: Info, completion: Completion) -> PreparedTransferPayload:
    """Publish what filing changed (the transaction has committed), and answer the transfer's state."""
    if completion.recording is not None:
        info.context.published(completion.recording.status_changes, completion.recording.touched_batch_ids)
    return PreparedTransferPayload(prepared_transfer=PreparedTransfer.of(completion.transfer))


@strawberry.type
class Mutation:
    @mutation(permission_classes=[IsOperator], under="input")
    async def create_grant(self, info: Info, input: GrantInput, idempotency_key: IdempotencyKey = None) -> GrantPayload:
        row = await grants.create_grant(input.to_app(), info.context.principal)
        return GrantPayload(grant=Grant.of(row))

    @mutation(permission_classes=[IsIngest], under="input", description="Reserve a transfer, under a grant's limit.")
    async def prepare_transfer(self, info: Info, input: PrepareTransferInput) -> PreparedTransferPayload:
        row = await reservations.prepare_transfer(input.to_app(), info.context.principal)
        return PreparedTransferPayload(prepared_transfer=PreparedTransfer.of(row))

    @mutation(permission_classes=[IsIngest],
              description="Commit a reserved transfer and file it into settlement batches.")
    async def commit_transfer(self, info: Info, transfer_id: str, delivered_amount: Amount | None = None,
                              committed_at: datetime | None = None) -> PreparedTransferPayload:
        return _published(info, await reservations.commit_transfer(transfer_id, delivered_amount, committed_at,
                                                                   info.context.principal))

    @mutation(permission_classes=[IsIngest], description="Abort a reserved transfer.")
    async def abort_transfer(self, info: Info, transfer_id: str, sent_amount: Amount | None = None,
                             reason: str | None = None) -> PreparedTransferPayload:
        return _published(info, await reservations.abort_transfer(transfer_id, sent_amount, reason,
                                                                  info.context.principal))

    @mutation(permission_classes=[IsOperator],
              description="Recompute a grant's spent amounts from its transfers and report differences "
                          "(logged and counted in /metrics, never repaired).")
    async def reconcile_grant(self, info: Info, id: strawberry.ID,
                              idempotency_key: IdempotencyKey = None) -> GrantReconciliationPayload:
        report = await reconciliation.reconcile(id, info.context.principal)
        return GrantReconciliationPayload(reconciliation=GrantReconciliation.of(report))
