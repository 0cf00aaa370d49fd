"""GraphQL types of settlement models (SPEC §3)."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON
from tortoise.functions import Count

from app.batches.keys import SEGMENT_SEPARATOR
from app.matrices import periods
from graphql_schema.common import Attribute
from graphql_schema.context import Info
from graphql_schema.enums import TimeUnit
from graphql_schema.errors import UserError
from models.settlement import Batch as BatchRow
from models.settlement import SettlementModel as ModelRow
from models.settlement import SettlementModelChange as ChangeRow

if TYPE_CHECKING:
    from graphql_schema.batches.types import BatchConnection, BatchFilter


@strawberry.input
class PeriodInput:
    unit: TimeUnit
    start: datetime
    end: datetime


@strawberry.type
class Segment:
    currency: str
    values: list[Attribute]
    batch_count: int


@strawberry.type
class SettlementModelChange:
    action: str
    actor: str
    at: datetime
    changes: JSON = strawberry.field(description="The changed fields and their new values, as JSON.")

    @classmethod
    def of(cls, row: ChangeRow) -> SettlementModelChange:
        return cls(action=row.action, actor=row.actor, at=row.at, changes=JSON(row.changes))


@strawberry.type
class SettlementModel:
    id: strawberry.ID
    name: str
    batch_interval_seconds: int
    currencies: list[str]
    segment_by: list[str]
    is_active: bool
    is_default: bool
    pk: strawberry.Private[int]

    @classmethod
    def of(cls, row: ModelRow) -> SettlementModel:
        return cls(id=strawberry.ID(str(row.id)), name=row.name, batch_interval_seconds=row.batch_interval_seconds,
                   currencies=list(row.currencies or []), segment_by=list(row.segment_by or []),
                   is_active=row.is_active, is_default=row.is_default, pk=row.id)

    @strawberry.field(description="The change log: who changed what, when (SPEC §3).")
    async def changes(self) -> list[SettlementModelChange]:
        return [SettlementModelChange.of(r) for r in await ChangeRow.filter(model_id=self.pk).order_by("id")]

    @strawberry.field
    async def batches(
        self,
        info: Info,
        filter: Annotated[BatchFilter, strawberry.lazy("graphql_schema.batches.types")] | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> Annotated[BatchConnection, strawberry.lazy("graphql_schema.batches.types")]:
        from graphql_schema.batches.types import batch_connection

        return await batch_connection(info, filter, first, after, model_id=self.pk)

    @strawberry.field(description="The segment combinations (currency and segment values) present in the period.")
    async def segments(self, period: PeriodInput) -> list[Segment]:
        checked = periods.validate_period(period.unit.value, period.start, period.end,
                                          self.batch_interval_seconds)
        rows = (
            await BatchRow.filter(model_id=self.pk, window_start__gte=checked.start,
                                  window_start__lt=checked.end)
            .annotate(batch_count=Count("id"))
            .group_by("currency", "segment_key")
            .order_by("currency", "segment_key")
            .values("currency", "segment_key", "batch_count")
        )
        keys = self.segment_by
        segments = []
        for r in rows:
            values = r["segment_key"].split(SEGMENT_SEPARATOR) if keys else []
            segments.append(Segment(
                currency=r["currency"],
                values=[Attribute(key=k, value=v) for k, v in zip(keys, values, strict=False)],
                batch_count=r["batch_count"],
            ))
        return segments


async def model_of(root: Any, info: Info) -> SettlementModel:
    """The settlement model of a type that carries its `model_id` (a batch, a matrix's criteria)."""
    row = await info.context.loaders.model.load(root.model_id)
    assert row is not None
    return SettlementModel.of(row)


@strawberry.type
class ModelPayload:
    model: SettlementModel | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SettlementModelInput:
    name: str
    batch_interval_seconds: int
    currencies: list[str] | None = None
    segment_by: list[str] | None = None
    is_default: bool | None = None
