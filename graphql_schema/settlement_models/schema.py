"""Queries and mutations of settlement models."""
from __future__ import annotations

import strawberry
from strawberry.types import Info

from app import settlement_models
from app.errors import DomainError
from graphql_schema.audit import audited
from graphql_schema.errors import UserError
from graphql_schema.permissions import IsOperator, IsViewer
from graphql_schema.settlement_models.types import ModelPayload, SettlementModel, SettlementModelInput
from models.settlement import SettlementModel as ModelRow


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsViewer])
    async def settlement_models(self) -> list[SettlementModel]:
        return [SettlementModel(row=row) for row in await ModelRow.all().order_by("name")]

    @strawberry.field(permission_classes=[IsViewer])
    async def settlement_model(self, name: str) -> SettlementModel | None:
        row = await ModelRow.get_or_none(name=name)
        return SettlementModel(row=row) if row else None


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=[IsOperator])
    async def create_settlement_model(self, info: Info, input: SettlementModelInput) -> ModelPayload:
        async with audited(info, "createSettlementModel", input.name) as audit:
            try:
                spec = settlement_models.validate_spec(input.name, input.batch_interval_seconds, input.currencies,
                                                       input.segment_by, input.is_default)
                row = await settlement_models.create_model(spec, info.context.principal)
            except DomainError as exc:
                return audit.refused(ModelPayload(user_errors=[UserError.of(exc.at("input"))]))
            return ModelPayload(model=SettlementModel(row=row))

    @strawberry.mutation(permission_classes=[IsOperator])
    async def set_settlement_model_active(self, info: Info, name: str, active: bool) -> ModelPayload:
        async with audited(info, "setSettlementModelActive", name) as audit:
            try:
                row = await settlement_models.set_active(name, active, info.context.principal)
            except DomainError as exc:
                return audit.refused(ModelPayload(user_errors=[UserError.of(exc)]))
            return ModelPayload(model=SettlementModel(row=row))
