"""GraphQL types of batches (SPEC §4, §5)."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from tortoise.queryset import QuerySet

from app.batches import lookups
from app.batches.status import StatusChange
from app.matrices import membership
from graphql_schema.common import Attribute, attributes_of
from graphql_schema.context import Info
from graphql_schema.enums import BatchStatus
from graphql_schema.errors import UserError
from graphql_schema.pagination import PageInfo, page_of
from graphql_schema.permissions import scope_of, sees
from graphql_schema.scalars import Amount, amount
from graphql_schema.settlement_models.types import SettlementModel, model_of
from models.settlement import Batch as BatchRow
from models.settlement import BatchAccount as AccountRow

if TYPE_CHECKING:
    from graphql_schema.matrices.types import SettlementMatrix
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
class StatusChangeFields:
    """What a batch status change says, as the batch's history keeps it and as subscribers receive it."""

    from_: BatchStatus | None = strawberry.field(name="from")
    to: BatchStatus
    at: datetime
    actor: str | None
    reason: str | None

    @staticmethod
    def fields_of(change: StatusChange) -> dict[str, Any]:
        return {"from_": BatchStatus(change.from_status) if change.from_status else None,
                "to": BatchStatus(change.to_status), "at": change.at, "actor": change.actor, "reason": change.reason}


@strawberry.type
class BatchStatusChange(StatusChangeFields):
    matrix_id: strawberry.Private[int | None]

    @classmethod
    def of(cls, change: StatusChange) -> BatchStatusChange:
        return cls(**cls.fields_of(change), matrix_id=change.matrix_id)

    @strawberry.field
    async def matrix(
        self, info: Info
    ) -> Annotated[SettlementMatrix, strawberry.lazy("graphql_schema.matrices.types")] | None:
        from graphql_schema.matrices.types import SettlementMatrix

        if self.matrix_id is None:
            return None
        row = await info.context.loaders.matrix.load(self.matrix_id)
        return SettlementMatrix.of(row) if row else None


async def load_batch(info: Info, batch_id: int) -> Batch | None:
    """The batch with this id, through the request's (or the event's) loader."""
    row = await info.context.loaders.batch.load(batch_id)
    return Batch.of(row) if row else None


@strawberry.type
class Batch:
    id: strawberry.ID
    name: str
    sequence: int
    model: SettlementModel = strawberry.field(resolver=model_of)
    pk: strawberry.Private[int]
    model_id: strawberry.Private[int]
    owner_matrix_id: strawberry.Private[int | None]

    @classmethod
    def of(cls, row: BatchRow) -> Batch:
        return cls(id=strawberry.ID(str(row.id)), name=row.name, sequence=row.sequence, pk=row.id,
                   model_id=row.model_id, owner_matrix_id=row.owner_matrix_id,  # type: ignore[attr-defined]
                   currency=row.currency, segment=attributes_of(row.segment), window_start=row.window_start,
                   window_end=row.window_end, status=BatchStatus(row.status))

    currency: str
    segment: list[Attribute]
    window_start: datetime
    window_end: datetime
    status: BatchStatus

    @strawberry.field
    async def transfer_count(self, info: Info) -> int:
        # Every transfer counts once for its payer's account and once for its payee's.
        accounts = await info.context.loaders.accounts.load(self.pk)
        return sum(a.transfer_count for a in accounts) // 2

    @strawberry.field
    async def accounts(self, info: Info) -> list[BatchAccount]:
        return [BatchAccount.of(a) for a in await info.context.loaders.accounts.load(self.pk)
                if sees(info, a.participant_id)]

    @strawberry.field(description="The matrix that locked (or settled) the batch.")
    async def owner_matrix(
        self, info: Info
    ) -> Annotated[SettlementMatrix, strawberry.lazy("graphql_schema.matrices.types")] | None:
        from graphql_schema.matrices.types import SettlementMatrix

        if self.owner_matrix_id is None:
            return None
        row = await info.context.loaders.matrix.load(self.owner_matrix_id)
        return SettlementMatrix.of(row) if row else None

    @strawberry.field(description="Every matrix that holds the batch now.")
    async def matrices(
        self, info: Info
    ) -> list[Annotated[SettlementMatrix, strawberry.lazy("graphql_schema.matrices.types")]]:
        from graphql_schema.matrices.types import SettlementMatrix

        return [SettlementMatrix.of(row) for row in await info.context.loaders.batch_matrices.load(self.pk)]

    @strawberry.field
    async def history(self, info: Info) -> list[BatchStatusChange]:
        return [BatchStatusChange.of(c) for c in await info.context.loaders.history.load(self.pk)]

    @strawberry.field
    async def transfers(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> Annotated[TransferConnection, strawberry.lazy("graphql_schema.transfers.types")]:
        from graphql_schema.transfers.types import transfer_connection

        return await transfer_connection(self.pk, first, after, scope_of(info))


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

    def to_app(self) -> lookups.BatchFilter:
        return lookups.BatchFilter(
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

    def to_app(self) -> lookups.BatchRef:
        return lookups.BatchRef(id=self.id, name=self.name, transfer_id=self.transfer_id)


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
    query: QuerySet[BatchRow] | None = None,
) -> BatchConnection:
    wanted = flt.to_app() if flt else None
    query = lookups.filtered(query if query is not None else BatchRow.all(), wanted)
    query = membership.in_any_matrix(query, wanted.in_any_matrix if wanted else None)
    if model_id is not None:
        query = query.filter(model_id=model_id)
    page = await page_of(query, first, after)
    for row in page.rows:
        info.context.loaders.batch.prime(row.id, row)
    return BatchConnection(edges=[BatchEdge(node=Batch.of(row), cursor=cursor) for row, cursor in page.cursors()],
                           page_info=page.page_info, total_count=page.total_count)
