"""Queries and mutations of settlement models."""
from __future__ import annotations

import strawberry

from app import settlement_models
from app.db.columns import fits
from graphql_schema.context import Info
from graphql_schema.errors import mutation
from graphql_schema.idempotency import IdempotencyKey
from graphql_schema.permissions import IsOperator, IsViewer
from graphql_schema.settlement_models.types import ModelPayload, SettlementModel, SettlementModelInput
from models.settlement import SettlementModel as ModelRow


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsViewer])
    async def settlement_models(self) -> list[SettlementModel]:
        return [SettlementModel.of(row) for row in await ModelRow.all().order_by("name")]

    @strawberry.field(permission_classes=[IsViewer])
    async def settlement_model(self, name: str) -> SettlementModel | None:
        row = await ModelRow.get_or_none(name=name) if fits(ModelRow, "name", name) else None
        return SettlementModel.of(row) if row else None


@strawberry.type
class Mutation:
    @mutation(permission_classes=[IsOperator], under="input")
    async def create_settlement_model(self, info: Info, input: SettlementModelInput,
                                      idempotency_key: IdempotencyKey = None) -> ModelPayload:
        row = await settlement_models.create_model(info.context.principal, input.name, input.batch_interval_seconds,
                                                   input.currencies, input.segment_by, input.is_default)
        return ModelPayload(model=SettlementModel.of(row))

    @mutation(permission_classes=[IsOperator])
    async def set_settlement_model_active(self, info: Info, name: str, active: bool,
                                          idempotency_key: IdempotencyKey = None) -> ModelPayload:
        row = await settlement_models.set_active(name, active, info.context.principal)
        return ModelPayload(model=SettlementModel.of(row))
