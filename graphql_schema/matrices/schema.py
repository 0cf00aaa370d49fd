"""Queries and mutations of settlement matrices (SPEC §6)."""
from __future__ import annotations

import strawberry
from strawberry.types import Info

from app import matrices
from app.batches import parse_id
from app.errors import DomainError
from graphql_schema.audit import audited
from graphql_schema.errors import UserError
from graphql_schema.matrices.types import (
    MatrixConnection,
    MatrixEdge,
    MatrixInput,
    MatrixPayload,
    MatrixStatus,
    SettlementMatrix,
    SettlementReport,
    SettlePayload,
    SkippedBatch,
)
from graphql_schema.pagination import PageInfo, decode_cursor, encode_cursor, page_size
from graphql_schema.permissions import IsOperator, IsSettler, IsViewer
from models.matrices import SettlementMatrix as MatrixRow


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsViewer])
    async def matrix(self, id: strawberry.ID) -> SettlementMatrix | None:
        row = await matrices.get(parse_id(id))
        return SettlementMatrix(row=row) if row else None

    @strawberry.field(permission_classes=[IsViewer])
    async def matrices(
        self, statuses: list[MatrixStatus] | None = None, first: int | None = 50, after: str | None = None
    ) -> MatrixConnection:
        size = page_size(first)
        after_id = decode_cursor(after)
        query = MatrixRow.all()
        if statuses:
            query = query.filter(status__in=[s.value for s in statuses])
        total = await query.count()
        page = query.order_by("id").limit(size + 1)
        if after_id is not None:
            page = page.filter(id__gt=after_id)
        rows = await page
        edges = [MatrixEdge(node=SettlementMatrix(row=r), cursor=encode_cursor(r.id)) for r in rows[:size]]
        return MatrixConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None),
            total_count=total,
        )


def _payload(info: Info, result: matrices.CommandResult) -> MatrixPayload:
    info.context.publish_status_changes(result.changes)  # the transaction has committed
    # The matrix itself may have changed without any batch status changing (STATIC batches added or removed,
    # its own status): matrixUpdated subscribers re-read it; an unchanged snapshot is not pushed twice.
    info.context.publish_matrix_changed(result.matrix.id)
    return MatrixPayload(matrix=SettlementMatrix(row=result.matrix),
                         skipped=[SkippedBatch.of(s) for s in result.skipped])


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=[IsOperator])
    async def create_matrix(self, info: Info, input: MatrixInput) -> MatrixPayload:
        async with audited(info, "createMatrix", input.model) as audit:
            try:
                row = await matrices.create_dynamic(input.to_app(), info.context.actor)
            except DomainError as exc:
                return audit.refused(MatrixPayload(user_errors=[UserError.of(exc)]))
            audit.note(matrix=row.id)
            return MatrixPayload(matrix=SettlementMatrix(row=row))

    @strawberry.mutation(permission_classes=[IsOperator])
    async def create_static_matrix(self, info: Info, batch_ids: list[strawberry.ID]) -> MatrixPayload:
        async with audited(info, "createStaticMatrix", f"{len(batch_ids)} batch(es)") as audit:
            try:
                row = await matrices.create_static(batch_ids, info.context.actor)
            except DomainError as exc:
                return audit.refused(MatrixPayload(user_errors=[UserError.of(exc)]))
            audit.note(matrix=row.id)
            return MatrixPayload(matrix=SettlementMatrix(row=row))

    @strawberry.mutation(permission_classes=[IsOperator])
    async def add_matrix_batches(self, info: Info, id: strawberry.ID, batch_ids: list[strawberry.ID]) -> MatrixPayload:
        async with audited(info, "addMatrixBatches", id) as audit:
            try:
                result = await matrices.edit_static(parse_id(id), batch_ids, add=True)
            except DomainError as exc:
                return audit.refused(MatrixPayload(user_errors=[UserError.of(exc)]))
            return _payload(info, result)

    @strawberry.mutation(permission_classes=[IsOperator])
    async def remove_matrix_batches(
        self, info: Info, id: strawberry.ID, batch_ids: list[strawberry.ID]
    ) -> MatrixPayload:
        async with audited(info, "removeMatrixBatches", id) as audit:
            try:
                result = await matrices.edit_static(parse_id(id), batch_ids, add=False)
            except DomainError as exc:
                return audit.refused(MatrixPayload(user_errors=[UserError.of(exc)]))
            return _payload(info, result)

    @strawberry.mutation(permission_classes=[IsOperator])
    async def close_matrix(self, info: Info, id: strawberry.ID) -> MatrixPayload:
        async with audited(info, "closeMatrix", id) as audit:
            try:
                result = await matrices.close_matrix(parse_id(id), info.context.actor)
            except DomainError as exc:
                return audit.refused(MatrixPayload(user_errors=[UserError.of(exc)]))
            audit.note(changed=len(result.changes), skipped=len(result.skipped))
            return _payload(info, result)

    @strawberry.mutation(permission_classes=[IsOperator])
    async def dispute_matrix(self, info: Info, id: strawberry.ID, reason: str | None = None) -> MatrixPayload:
        async with audited(info, "disputeMatrix", id) as audit:
            try:
                result = await matrices.dispute_matrix(parse_id(id), info.context.actor, reason)
            except DomainError as exc:
                return audit.refused(MatrixPayload(user_errors=[UserError.of(exc)]))
            audit.note(changed=len(result.changes), skipped=len(result.skipped))
            return _payload(info, result)

    @strawberry.mutation(permission_classes=[IsOperator])
    async def request_settlement(
        self, info: Info, id: strawberry.ID, expected_checksum: str | None = None
    ) -> MatrixPayload:
        async with audited(info, "requestSettlement", id) as audit:
            try:
                result = await matrices.request_settlement(parse_id(id), expected_checksum, info.context.actor)
            except DomainError as exc:
                return audit.refused(MatrixPayload(user_errors=[UserError.of(exc)]))
            audit.note(changed=len(result.changes), skipped=len(result.skipped))
            return _payload(info, result)

    @strawberry.mutation(permission_classes=[IsSettler])
    async def cancel_settlement(self, info: Info, id: strawberry.ID) -> MatrixPayload:
        async with audited(info, "cancelSettlement", id) as audit:
            try:
                result = await matrices.cancel_settlement(parse_id(id), info.context.actor)
            except DomainError as exc:
                return audit.refused(MatrixPayload(user_errors=[UserError.of(exc)]))
            audit.note(changed=len(result.changes))
            return _payload(info, result)

    @strawberry.mutation(permission_classes=[IsSettler])
    async def settle_matrix(self, info: Info, id: strawberry.ID, expected_checksum: str | None = None) -> SettlePayload:
        async with audited(info, "settleMatrix", id) as audit:
            try:
                result = await matrices.settle_matrix(parse_id(id), expected_checksum, info.context.actor,
                                                      info.context.settings.four_eyes)
            except DomainError as exc:
                return audit.refused(SettlePayload(user_errors=[UserError.of(exc)]))
            info.context.publish_status_changes(result.changes)
            assert result.settlement is not None
            audit.note(settlement=result.settlement.id, settled=len(result.changes))
            return SettlePayload(matrix=SettlementMatrix(row=result.matrix),
                                 report=SettlementReport(row=result.settlement))
