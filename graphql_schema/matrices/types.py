"""GraphQL types of settlement matrices and settlement reports (SPEC §6, §7)."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from app import matrices
from app import matrix_totals as mt
from app.batch_lifecycle import Skipped
from graphql_schema.common import Attribute, AttributeInput, attributes_of
from graphql_schema.enums import BatchStatus, TimeUnit
from graphql_schema.errors import UserError
from graphql_schema.pagination import PageInfo
from graphql_schema.scalars import Amount, amount
from models.matrices import Settlement as SettlementRow
from models.matrices import SettlementMatrix as MatrixRow

if TYPE_CHECKING:
    from graphql_schema.batches.types import Batch, BatchConnection
    from graphql_schema.settlement_models.types import PeriodInput, SettlementModel


@strawberry.enum
class MatrixType(enum.Enum):
    DYNAMIC = "DYNAMIC"
    STATIC = "STATIC"


@strawberry.enum
class MatrixStatus(enum.Enum):
    OPEN = "OPEN"
    AWAITING_SETTLEMENT = "AWAITING_SETTLEMENT"
    SETTLED = "SETTLED"


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
    def of(cls, total: mt.AccountTotal) -> ParticipantTotal:
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
    row: strawberry.Private[MatrixRow]

    @strawberry.field
    async def model(
        self, info: Info
    ) -> Annotated[SettlementModel, strawberry.lazy("graphql_schema.settlement_models.types")]:
        from graphql_schema.settlement_models.types import SettlementModel

        row = await info.context.loaders.model.load(self.row.model_id)  # type: ignore[attr-defined]
        return SettlementModel(row=row)

    @strawberry.field
    def period(self) -> Period | None:
        if self.row.period_unit is None or self.row.period_start is None or self.row.period_end is None:
            return None
        return Period(unit=TimeUnit(self.row.period_unit), start=self.row.period_start, end=self.row.period_end)

    @strawberry.field
    def currencies(self) -> list[str]:
        return mt.split_set(self.row.currencies)

    @strawberry.field
    def segment(self) -> list[Attribute]:
        return attributes_of(self.row.segment)

    @strawberry.field
    def batch_statuses(self) -> list[BatchStatus]:
        return [BatchStatus(s) for s in mt.split_set(self.row.batch_statuses)]


@strawberry.type
class SettlementMatrix:
    row: strawberry.Private[MatrixRow]

    async def _totals(self, info: Info) -> mt.MatrixTotals:
        # One read of the live totals per matrix and request, whichever total fields are asked for.
        return await info.context.loaders.matrix_totals.load(self.row)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.row.id))

    @strawberry.field
    def type(self) -> MatrixType:
        return MatrixType(self.row.type)

    @strawberry.field
    def status(self) -> MatrixStatus:
        return MatrixStatus(self.row.status)

    @strawberry.field
    def criteria(self) -> MatrixCriteria | None:
        return MatrixCriteria(row=self.row) if self.row.type == matrices.MatrixType.DYNAMIC else None

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    async def batch_count(self, info: Info) -> int:
        return (await self._totals(info)).batch_count

    @strawberry.field
    async def batches(
        self, info: Info, first: int | None = 50, after: str | None = None, statuses: list[BatchStatus] | None = None
    ) -> Annotated[BatchConnection, strawberry.lazy("graphql_schema.batches.types")]:
        from graphql_schema.batches.types import BatchFilter, batch_connection

        flt = BatchFilter(statuses=statuses) if statuses else None
        return await batch_connection(info, flt, first, after, query=matrices.member_query(self.row))

    @strawberry.field(description="Per participant and currency, over all batches of the matrix (live).")
    async def participants(self, info: Info) -> list[ParticipantTotal]:
        return [ParticipantTotal.of(t) for t in (await self._totals(info)).participants]

    @strawberry.field(description="Per participant and currency, over the batches a settlement would settle now.")
    async def settleable(self, info: Info) -> list[ParticipantTotal]:
        return [ParticipantTotal.of(t) for t in (await self._totals(info)).settleable]

    @strawberry.field
    async def by_status(self, info: Info) -> list[StatusTotal]:
        return [StatusTotal(status=BatchStatus(t.status), currency=t.currency, batch_count=t.batch_count,
                            debit=amount(t.debit, t.currency), credit=amount(t.credit, t.currency))
                for t in (await self._totals(info)).by_status]

    @strawberry.field
    async def by_currency(self, info: Info) -> list[CurrencyTotal]:
        return [CurrencyTotal(currency=t.currency, batch_count=t.batch_count, debit=amount(t.debit, t.currency),
                              credit=amount(t.credit, t.currency))
                for t in (await self._totals(info)).by_currency]

    @strawberry.field(description="Digest of the settleable content; pass it as expectedChecksum.")
    async def checksum(self, info: Info) -> str:
        return (await self._totals(info)).checksum

    @strawberry.field
    def requested_by(self) -> str | None:
        return self.row.requested_by

    @strawberry.field
    async def settlement(self, info: Info) -> SettlementReport | None:
        row = await info.context.loaders.settlement.load(self.row.id)
        return SettlementReport(row=row) if row else None


@strawberry.type
class SettlementReport:
    row: strawberry.Private[SettlementRow]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.row.id))

    @strawberry.field
    async def matrix(self, info: Info) -> SettlementMatrix:
        row = await info.context.loaders.matrix.load(self.row.matrix_id)  # type: ignore[attr-defined]
        return SettlementMatrix(row=row)

    @strawberry.field
    def settled_at(self) -> datetime:
        return self.row.settled_at

    @strawberry.field
    def requested_by(self) -> str | None:
        return self.row.requested_by

    @strawberry.field
    def settled_by(self) -> str:
        return self.row.settled_by

    @strawberry.field
    async def participants(self) -> list[ParticipantTotal]:
        return [ParticipantTotal.of(t) for t in await matrices.settlement_totals(self.row.id)]

    @strawberry.field
    async def batches(self, info: Info) -> list[Annotated[Batch, strawberry.lazy("graphql_schema.batches.types")]]:
        from graphql_schema.batches.types import Batch

        rows = await matrices.settled_batches(self.row.matrix_id)  # type: ignore[attr-defined]
        for row in rows:
            info.context.loaders.batch.prime(row.id, row)
        return [Batch(row=row) for row in rows]


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
        from graphql_schema.batches.types import Batch

        return Batch(row=await info.context.loaders.batch.load(self.batch_id))

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

    def to_app(self) -> matrices.CriteriaInput:
        return matrices.CriteriaInput(
            model=self.model, unit=self.period.unit.value, start=self.period.start, end=self.period.end,
            currencies=self.currencies, segment=[(a.key, a.value) for a in self.segment or []],
            batch_statuses=[s.value for s in self.batch_statuses or []],
        )
