"""GraphQL types of batches (SPEC §4, §5)."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info
from tortoise.queryset import QuerySet

from app import batches as batch_queries
from graphql_schema.common import Attribute, attributes_of
from graphql_schema.enums import BatchStatus
from graphql_schema.errors import UserError
from graphql_schema.pagination import PageInfo, page_of
from graphql_schema.scalars import Amount, amount
from models.settlement import Batch as BatchRow
from models.settlement import BatchAccount as AccountRow
from models.settlement import BatchStatusChange as ChangeRow

if TYPE_CHECKING:
    from graphql_schema.matrices.types import SettlementMatrix
    from graphql_schema.settlement_models.types import SettlementModel
    from graphql_schema.transfers.types import TransferConnection


@strawberry.type
class BatchAccount:
    participant_id: str
    currency: str
    debit: Amount
    credit: Amount
    net: Amount

    @classmethod
    def of(cls, row: AccountRow) -> BatchAccount:
        return cls(
            participant_id=row.participant_id,
            currency=row.currency,
            debit=amount(row.debit, row.currency),
            credit=amount(row.credit, row.currency),
            net=amount(row.credit - row.debit, row.currency),
        )


@strawberry.type
class BatchStatusChange:
    row: strawberry.Private[ChangeRow]

    @strawberry.field(name="from")
    def from_(self) -> BatchStatus | None:
        return BatchStatus(self.row.from_status) if self.row.from_status else None

    @strawberry.field
    def to(self) -> BatchStatus:
        return BatchStatus(self.row.to_status)

    @strawberry.field
    def at(self) -> datetime:
        return self.row.at

    @strawberry.field
    def actor(self) -> str | None:
        return self.row.actor

    @strawberry.field
    def reason(self) -> str | None:
        return self.row.reason

    @strawberry.field
    async def matrix(
        self, info: Info
    ) -> Annotated[SettlementMatrix, strawberry.lazy("graphql_schema.matrices.types")] | None:
        from graphql_schema.matrices.types import SettlementMatrix

        if self.row.matrix_id is None:
            return None
        row = await info.context.loaders.matrix.load(self.row.matrix_id)
        return SettlementMatrix(row=row) if row else None


@strawberry.type
class Batch:
    row: strawberry.Private[BatchRow]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.row.id))

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    def sequence(self) -> int:
        return self.row.sequence

    @strawberry.field
    async def model(
        self, info: Info
    ) -> Annotated[SettlementModel, strawberry.lazy("graphql_schema.settlement_models.types")]:
        from graphql_schema.settlement_models.types import SettlementModel

        row = await info.context.loaders.model.load(self.row.model_id)  # type: ignore[attr-defined]
        return SettlementModel(row=row)

    @strawberry.field
    def currency(self) -> str:
        return self.row.currency

    @strawberry.field
    def segment(self) -> list[Attribute]:
        return attributes_of(self.row.segment)

    @strawberry.field
    def window_start(self) -> datetime:
        return self.row.window_start

    @strawberry.field
    def window_end(self) -> datetime:
        return self.row.window_end

    @strawberry.field
    def status(self) -> BatchStatus:
        return BatchStatus(self.row.status)

    @strawberry.field
    async def transfer_count(self, info: Info) -> int:
        # Every transfer counts once for its payer's account and once for its payee's.
        accounts = await info.context.loaders.accounts.load(self.row.id)
        return sum(a.transfer_count for a in accounts) // 2

    @strawberry.field
    async def accounts(self, info: Info) -> list[BatchAccount]:
        return [BatchAccount.of(a) for a in await info.context.loaders.accounts.load(self.row.id)]

    @strawberry.field(description="The matrix that locked (or settled) the batch.")
    async def owner_matrix(
        self, info: Info
    ) -> Annotated[SettlementMatrix, strawberry.lazy("graphql_schema.matrices.types")] | None:
        from graphql_schema.matrices.types import SettlementMatrix

        if self.row.owner_matrix_id is None:
            return None
        row = await info.context.loaders.matrix.load(self.row.owner_matrix_id)
        return SettlementMatrix(row=row) if row else None

    @strawberry.field(description="Every matrix that holds the batch now.")
    async def matrices(
        self, info: Info
    ) -> list[Annotated[SettlementMatrix, strawberry.lazy("graphql_schema.matrices.types")]]:
        from graphql_schema.matrices.types import SettlementMatrix

        return [SettlementMatrix(row=row) for row in await info.context.loaders.batch_matrices.load(self.row.id)]

    @strawberry.field
    async def history(self, info: Info) -> list[BatchStatusChange]:
        return [BatchStatusChange(row=c) for c in await info.context.loaders.history.load(self.row.id)]

    @strawberry.field
    async def transfers(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> Annotated[TransferConnection, strawberry.lazy("graphql_schema.transfers.types")]:
        from graphql_schema.transfers.types import transfer_connection

        return await transfer_connection(self.row.id, first, after)


@strawberry.type
class BatchEdge:
    node: Batch
    cursor: str


@strawberry.type
class BatchConnection:
    edges: list[BatchEdge]
    page_info: PageInfo
    total_count: int


@strawberry.input
class BatchFilter:
    model: str | None = None
    currencies: list[str] | None = None
    statuses: list[BatchStatus] | None = None
    window_from: datetime | None = None
    window_to: datetime | None = None
    in_any_matrix: bool | None = None

    def to_app(self) -> batch_queries.BatchFilter:
        return batch_queries.BatchFilter(
            model=self.model,
            currencies=self.currencies,
            statuses=[s.value for s in self.statuses] if self.statuses else None,
            window_from=self.window_from,
            window_to=self.window_to,
            in_any_matrix=self.in_any_matrix,
        )


@strawberry.input(description="Exactly one of id, name or transferId.")
class BatchRef:
    id: strawberry.ID | None = None
    name: str | None = None
    transfer_id: str | None = None

    def to_app(self) -> batch_queries.BatchRef:
        return batch_queries.BatchRef(id=self.id, name=self.name, transfer_id=self.transfer_id)


@strawberry.type
class BatchPayload:
    batch: Batch | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


async def batch_connection(
    info: Info,
    flt: BatchFilter | None,
    first: int | None,
    after: str | None,
    model_id: int | None = None,
    batch_ids: list[int] | None = None,
    query: QuerySet[BatchRow] | None = None,
) -> BatchConnection:
    query = batch_queries.filtered(query if query is not None else BatchRow.all(), flt.to_app() if flt else None)
    if model_id is not None:
        query = query.filter(model_id=model_id)
    if batch_ids is not None:
        query = query.filter(id__in=batch_ids)
    page = await page_of(query, first, after)
    for row in page.rows:
        info.context.loaders.batch.prime(row.id, row)
    return BatchConnection(edges=[BatchEdge(node=Batch(row=row), cursor=cursor) for row, cursor in page.cursors()],
                           page_info=page.page_info, total_count=page.total_count)
