"""Queries and mutations of settlement matrices (SPEC §6)."""
from __future__ import annotations

import strawberry

from app.core.checks import parse_id
from app.matrices import commands, reports
from graphql_schema.context import Info
from graphql_schema.errors import mutation
from graphql_schema.idempotency import IdempotencyKey
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
        row = await reports.get(parse_id(id))
        return SettlementMatrix.of(row) if row else None

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
        edges = [MatrixEdge(node=SettlementMatrix.of(r), cursor=encode_cursor(r.id)) for r in rows[:size]]
        return MatrixConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None),
            total_count=total,
        )


def _payload(info: Info, result: commands.CommandResult) -> MatrixPayload:
    # The matrix itself may have changed without any batch status changing (STATIC batches added or removed,
    # its own status): matrixUpdated subscribers re-read it; an unchanged snapshot is not pushed twice.
    info.context.published(result.changes, matrix_id=result.matrix.id)
    return MatrixPayload(matrix=SettlementMatrix.of(result.matrix),
                         skipped=[SkippedBatch.of(s) for s in result.skipped])


@strawberry.type
class Mutation:
    @mutation(permission_classes=[IsOperator])
    async def create_matrix(self, info: Info, input: MatrixInput,
                            idempotency_key: IdempotencyKey = None) -> MatrixPayload:
        row = await commands.create_dynamic(input.to_app(), info.context.principal)
        return MatrixPayload(matrix=SettlementMatrix.of(row))

    @mutation(permission_classes=[IsOperator])
    async def create_static_matrix(self, info: Info, batch_ids: list[strawberry.ID],
                                   idempotency_key: IdempotencyKey = None) -> MatrixPayload:
        row = await commands.create_static(batch_ids, info.context.principal)
        return MatrixPayload(matrix=SettlementMatrix.of(row))

    @mutation(permission_classes=[IsOperator])
    async def add_matrix_batches(self, info: Info, id: strawberry.ID, batch_ids: list[strawberry.ID],
                                 idempotency_key: IdempotencyKey = None) -> MatrixPayload:
        return _payload(info, await commands.edit_static(id, batch_ids, True, info.context.principal))

    @mutation(permission_classes=[IsOperator])
    async def remove_matrix_batches(
        self, info: Info, id: strawberry.ID, batch_ids: list[strawberry.ID],
        idempotency_key: IdempotencyKey = None) -> MatrixPayload:
        return _payload(info, await commands.edit_static(id, batch_ids, False, info.context.principal))

    @mutation(permission_classes=[IsOperator])
    async def close_matrix(self, info: Info, id: strawberry.ID,
                           idempotency_key: IdempotencyKey = None) -> MatrixPayload:
        return _payload(info, await commands.close_matrix(id, info.context.principal))

    @mutation(permission_classes=[IsOperator])
    async def dispute_matrix(self, info: Info, id: strawberry.ID, reason: str | None = None,
                             idempotency_key: IdempotencyKey = None) -> MatrixPayload:
        return _payload(info, await commands.dispute_matrix(id, info.context.principal, reason))

    @mutation(permission_classes=[IsOperator])
    async def request_settlement(
        self, info: Info, id: strawberry.ID, expected_checksum: str | None = None,
        idempotency_key: IdempotencyKey = None) -> MatrixPayload:
        return _payload(info, await commands.request_settlement(id, expected_checksum, info.context.principal))

    @mutation(permission_classes=[IsSettler])
    async def cancel_settlement(self, info: Info, id: strawberry.ID,
                                idempotency_key: IdempotencyKey = None) -> MatrixPayload:
        return _payload(info, await commands.cancel_settlement(id, info.context.principal))

    @mutation(permission_classes=[IsSettler])
    async def settle_matrix(self, info: Info, id: strawberry.ID, expected_checksum: str | None = None,
                            idempotency_key: IdempotencyKey = None) -> SettlePayload:
        result = await commands.settle_matrix(id, expected_checksum, info.context.principal,
                                              info.context.settings.four_eyes)
        info.context.published(result.changes)
        assert result.settlement is not None
        return SettlePayload(matrix=SettlementMatrix.of(result.matrix), report=SettlementReport.of(result.settlement))
