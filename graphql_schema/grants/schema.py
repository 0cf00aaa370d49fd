"""Queries and mutations of payment grants and prepared transfers (SPEC §9)."""
from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from app import grants
from app.errors import DomainError
from graphql_schema.audit import AuditScope, audited
from graphql_schema.errors import UserError
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
from graphql_schema.permissions import IsIngest, IsOperator, IsViewer
from graphql_schema.scalars import Amount


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsViewer])
    async def grant(self, id: strawberry.ID) -> Grant | None:
        row = await grants.find_grant(id)
        return Grant(row=row) if row else None

    @strawberry.field(permission_classes=[IsViewer])
    async def prepared_transfer(self, transfer_id: str) -> PreparedTransfer | None:
        row = await grants.find_prepared(transfer_id)
        return PreparedTransfer(row=row) if row else None


def _published(info: Info, completion: grants.Completion) -> PreparedTransferPayload:
    """Publish what filing changed (after the commit), and answer the transfer's state."""
    if completion.recording is not None:
        info.context.publish_status_changes(completion.recording.status_changes)
        info.context.publish_batch_totals(completion.recording.touched_batch_ids)
    return PreparedTransferPayload(prepared_transfer=PreparedTransfer(row=completion.transfer))


def _note(info: Info, operation: str, target: str) -> grants.AuditNote:
    """The audit entry, written inside the mutation's own transaction (app/grants.py); `_done` tells `audited`."""
    return grants.AuditNote(info.context.principal, operation, target)


def _done(audit: AuditScope, payload: PreparedTransferPayload) -> PreparedTransferPayload:
    audit.recorded = True  # committed with the change; a refusal rolled it back and `audited` records it
    return payload


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=[IsOperator])
    async def create_grant(self, info: Info, input: GrantInput) -> GrantPayload:
        async with audited(info, "createGrant", input.payer_id) as audit:
            try:
                row = await grants.create_grant(input.to_app(), info.context.actor)
            except DomainError as exc:
                return audit.refused(GrantPayload(user_errors=[UserError.of(exc.at("input"))]))
            audit.note(grant_id=row.id)
            return GrantPayload(grant=Grant(row=row))

    @strawberry.mutation(permission_classes=[IsIngest], description="Reserve a transfer, under a grant's limit.")
    async def prepare_transfer(self, info: Info, input: PrepareTransferInput) -> PreparedTransferPayload:
        async with audited(info, "prepareTransfer", input.transfer_id) as audit:
            try:
                row = await grants.prepare_transfer(input.to_app(), info.context.actor,
                                                    _note(info, "prepareTransfer", input.transfer_id))
            except DomainError as exc:
                return audit.refused(PreparedTransferPayload(user_errors=[UserError.of(exc.at("input"))]))
            return _done(audit, PreparedTransferPayload(prepared_transfer=PreparedTransfer(row=row)))

    @strawberry.mutation(permission_classes=[IsIngest],
                         description="Commit a reserved transfer and file it into settlement batches.")
    async def commit_transfer(self, info: Info, transfer_id: str, delivered_amount: Amount | None = None,
                              committed_at: datetime | None = None) -> PreparedTransferPayload:
        async with audited(info, "commitTransfer", transfer_id) as audit:
            try:
                completion = await grants.commit_transfer(transfer_id, delivered_amount, committed_at,
                                                          info.context.actor,
                                                          _note(info, "commitTransfer", transfer_id))
            except DomainError as exc:
                return audit.refused(PreparedTransferPayload(user_errors=[UserError.of(exc)]))
            return _done(audit, _published(info, completion))

    @strawberry.mutation(permission_classes=[IsIngest], description="Abort a reserved transfer.")
    async def abort_transfer(self, info: Info, transfer_id: str, sent_amount: Amount | None = None,
                             reason: str | None = None) -> PreparedTransferPayload:
        async with audited(info, "abortTransfer", transfer_id) as audit:
            try:
                completion = await grants.abort_transfer(transfer_id, sent_amount, reason, info.context.actor,
                                                         _note(info, "abortTransfer", transfer_id))
            except DomainError as exc:
                return audit.refused(PreparedTransferPayload(user_errors=[UserError.of(exc)]))
            return _done(audit, _published(info, completion))

    @strawberry.mutation(permission_classes=[IsOperator],
                         description="Recompute a grant's spent amounts from its transfers and report differences "
                                     "(logged and counted in /metrics, never repaired).")
    async def reconcile_grant(self, info: Info, id: strawberry.ID) -> GrantReconciliationPayload:
        async with audited(info, "reconcileGrant", str(id)) as audit:
            try:
                report = await grants.reconcile_grant(id)
            except DomainError as exc:
                return audit.refused(GrantReconciliationPayload(user_errors=[UserError.of(exc)]))
            audit.note(consistent=report.consistent, issues=len(report.issues))
            return GrantReconciliationPayload(reconciliation=GrantReconciliation.of(report))
