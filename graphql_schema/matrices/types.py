"""GraphQL types of settlement matrices and settlement reports (SPEC §6, §7)."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from app.batches.rollup import AccountTotal
from app.batches.status import Skipped
from app.matrices import membership, reports
from app.matrices.rules import CriteriaInput, split_set
from app.matrices.totals import MatrixTotals
from graphql_schema.common import Attribute, AttributeInput, attributes_of
from graphql_schema.context import Info
from graphql_schema.enums import BatchStatus, MatrixStatus, MatrixType, TimeUnit
from graphql_schema.errors import UserError
from graphql_schema.pagination import PageInfo
from graphql_schema.permissions import sees, withheld
from graphql_schema.scalars import Amount, amount
from graphql_schema.settlement_models.types import SettlementModel, model_of
from models.matrices import Settlement as SettlementRow
from models.matrices import SettlementMatrix as MatrixRow

if TYPE_CHECKING:
    from graphql_schema.batches.types import Batch, BatchConnection
    from graphql_schema.settlement_models.types import PeriodInput


@strawberry.type
class Period:
    unit: TimeUnit
    start: datetime
    end: datetime


@strawberry.type
class ParticipantTotal:
    participant_id: str
    currency: str
    debit: Amount
    credit: Amount
    net: Amount

    @classmethod
    def of(cls, total: AccountTotal) -> ParticipantTotal:
        return cls(participant_id=total.participant_id, currency=total.currency,
                   debit=amount(total.debit, total.currency), credit=amount(total.credit, total.currency),
                   net=amount(total.net, total.currency))


@strawberry.type
class StatusTotal:
    status: BatchStatus
    currency: str
    batch_count: int
    debit: Amount
    credit: Amount


@strawberry.type
class CurrencyTotal:
    currency: str
    batch_count: int
    debit: Amount
    credit: Amount


@strawberry.type
class MatrixCriteria:
    model_id: strawberry.Private[int]
    model: SettlementModel = strawberry.field(resolver=model_of)

    @classmethod
    def of(cls, row: MatrixRow) -> MatrixCriteria:
        period = None
        if row.period_unit is not None and row.period_start is not None and row.period_end is not None:
            period = Period(unit=TimeUnit(row.period_unit), start=row.period_start, end=row.period_end)
        return cls(model_id=row.model_id, period=period, currencies=split_set(row.currencies),  # type: ignore[attr-defined]
                   segment=attributes_of(row.segment),
                   batch_statuses=[BatchStatus(s) for s in split_set(row.batch_statuses)])

    period: Period | None
    currencies: list[str]
    segment: list[Attribute]
    batch_statuses: list[BatchStatus]


# The live totals of a matrix: one read per matrix and request (a DataLoader keyed by id, status and version),
# whichever of these fields are asked for.
async def _totals(root: SettlementMatrix, info: Info) -> MatrixTotals:
    return await info.context.loaders.matrix_totals.load(root.row)


async def _batch_count(root: SettlementMatrix, info: Info) -> int:
    return (await _totals(root, info)).batch_count


async def _batches(
    root: SettlementMatrix, info: Info, first: int | None = 50, after: str | None = None,
    statuses: list[BatchStatus] | None = None,
) -> Annotated[BatchConnection, strawberry.lazy("graphql_schema.batches.types")]:
    from graphql_schema.batches.types import BatchFilter, batch_connection

    flt = BatchFilter(statuses=statuses) if statuses else None
    return await batch_connection(info, flt, first, after, query=membership.member_query(root.row))


def _visible(info: Info, totals: list[AccountTotal]) -> list[ParticipantTotal]:
    """Per participant rows: a PARTICIPANT caller's own only (the others are absent, never zeroed)."""
    return [ParticipantTotal.of(t) for t in totals if sees(info, t.participant_id)]


async def _participants(root: SettlementMatrix, info: Info) -> list[ParticipantTotal]:
    return _visible(info, (await _totals(root, info)).participants)


async def _settleable(root: SettlementMatrix, info: Info) -> list[ParticipantTotal]:
    return _visible(info, (await _totals(root, info)).settleable)


async def _by_status(root: SettlementMatrix, info: Info) -> list[StatusTotal]:
    withheld(info, "gross totals by status")
    return [StatusTotal(status=BatchStatus(t.status), currency=t.currency, batch_count=t.batch_count,
                        debit=amount(t.debit, t.currency), credit=amount(t.credit, t.currency))
            for t in (await _totals(root, info)).by_status]


async def _by_currency(root: SettlementMatrix, info: Info) -> list[CurrencyTotal]:
    withheld(info, "gross totals by currency")
    return [CurrencyTotal(currency=t.currency, batch_count=t.batch_count, debit=amount(t.debit, t.currency),
                          credit=amount(t.credit, t.currency))
            for t in (await _totals(root, info)).by_currency]


async def _checksum(root: SettlementMatrix, info: Info) -> str:
    return (await _totals(root, info)).checksum


@strawberry.type
class SettlementMatrix:
    row: strawberry.Private[MatrixRow]  # the live totals are read from it
    id: strawberry.ID
    type: MatrixType
    status: MatrixStatus
    criteria: MatrixCriteria | None
    created_at: datetime
    batch_count: int = strawberry.field(resolver=_batch_count)
    batches: Annotated[BatchConnection, strawberry.lazy("graphql_schema.batches.types")] = strawberry.field(
        resolver=_batches)
    participants: list[ParticipantTotal] = strawberry.field(
        resolver=_participants, description="Per participant and currency, over all batches of the matrix (live).")
    settleable: list[ParticipantTotal] = strawberry.field(
        resolver=_settleable,
        description="Per participant and currency, over the batches a settlement would settle now.")
    by_status: list[StatusTotal] = strawberry.field(resolver=_by_status)
    by_currency: list[CurrencyTotal] = strawberry.field(resolver=_by_currency)
    checksum: str = strawberry.field(resolver=_checksum,
                                     description="Digest of the settleable content; pass it as expectedChecksum.")
    requested_by: str | None

    @classmethod
    def of(cls, row: MatrixRow) -> SettlementMatrix:
        return cls(row=row, id=strawberry.ID(str(row.id)), type=MatrixType(row.type), status=MatrixStatus(row.status),
                   criteria=MatrixCriteria.of(row) if row.type == MatrixType.DYNAMIC else None,
                   created_at=row.created_at, requested_by=row.requested_by)

    @strawberry.field
    async def settlement(self, info: Info) -> SettlementReport | None:
        row = await info.context.loaders.settlement.load(self.row.id)
        return SettlementReport.of(row) if row else None


async def _report_matrix(root: SettlementReport, info: Info) -> SettlementMatrix:
    row = await info.context.loaders.matrix.load(root.matrix_id)
    assert row is not None
    return SettlementMatrix.of(row)


@strawberry.type
class SettlementReport:
    id: strawberry.ID
    pk: strawberry.Private[int]
    matrix_id: strawberry.Private[int]
    matrix: SettlementMatrix = strawberry.field(resolver=_report_matrix)

    @classmethod
    def of(cls, row: SettlementRow) -> SettlementReport:
        return cls(id=strawberry.ID(str(row.id)), pk=row.id, matrix_id=row.matrix_id,  # type: ignore[attr-defined]
                   settled_at=row.settled_at, requested_by=row.requested_by, settled_by=row.settled_by)

    settled_at: datetime
    requested_by: str | None
    settled_by: str

    @strawberry.field
    async def participants(self, info: Info) -> list[ParticipantTotal]:
        return _visible(info, await reports.settlement_totals(self.pk))

    @strawberry.field
    async def batches(self, info: Info) -> list[Annotated[Batch, strawberry.lazy("graphql_schema.batches.types")]]:
        from graphql_schema.batches.types import Batch

        matrix = await info.context.loaders.matrix.load(self.matrix_id)
        rows = await membership.settled_batches(matrix) if matrix is not None else []
        for row in rows:
            info.context.loaders.batch.prime(row.id, row)
        return [Batch.of(row) for row in rows]


@strawberry.type
class MatrixEdge:
    node: SettlementMatrix
    cursor: str


@strawberry.type
class MatrixConnection:
    edges: list[MatrixEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class SkippedBatch:
    batch_id: strawberry.Private[int]
    reason: str

    @strawberry.field
    async def batch(self, info: Info) -> Annotated[Batch, strawberry.lazy("graphql_schema.batches.types")]:
        from graphql_schema.batches.types import load_batch

        batch = await load_batch(info, self.batch_id)
        assert batch is not None
        return batch

    @classmethod
    def of(cls, skipped: Skipped) -> SkippedBatch:
        return cls(batch_id=skipped.batch_id, reason=skipped.reason)


@strawberry.type
class MatrixPayload:
    matrix: SettlementMatrix | None = None
    skipped: list[SkippedBatch] = strawberry.field(default_factory=list)
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class SettlePayload:
    matrix: SettlementMatrix | None = None
    report: SettlementReport | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class MatrixInput:
    model: str
    period: Annotated[PeriodInput, strawberry.lazy("graphql_schema.settlement_models.types")]
    currencies: list[str] | None = None
    segment: list[AttributeInput] | None = None
    batch_statuses: list[BatchStatus] | None = None

    def to_app(self) -> CriteriaInput:
        return CriteriaInput(
            model=self.model, unit=self.period.unit.value, start=self.period.start, end=self.period.end,
            currencies=self.currencies, segment=[(a.key, a.value) for a in self.segment or []],
            batch_statuses=[s.value for s in self.batch_statuses or []],
        )
