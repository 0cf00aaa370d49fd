"""The root schema, merged from the domain Query and Mutation types."""
from __future__ import annotations

from typing import Any

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from graphql_schema.batches import schema as batches
from graphql_schema.errors import MaskInternalErrors
from graphql_schema.grants import schema as grants
from graphql_schema.matrices import schema as matrices
from graphql_schema.operation_metrics import OperationMetrics
from graphql_schema.participants import schema as participants
from graphql_schema.scalars import SCALAR_MAP
from graphql_schema.settlement_models import schema as settlement_models
from graphql_schema.shared_subscriptions import SharedSubscriptions
from graphql_schema.subscriptions import Subscription
from graphql_schema.transfers import schema as transfers

Query = merge_types("Query", (settlement_models.Query, batches.Query, transfers.Query, participants.Query,
                               grants.Query, matrices.Query))
Mutation = merge_types("Mutation", (settlement_models.Mutation, transfers.Mutation, batches.Mutation, grants.Mutation,
                                     matrices.Mutation))
# Built once: the rule classes are part of the validation cache's key, so a new class per request
# (QueryDepthLimiter's own factory) would never hit it.
DEPTH_RULES = QueryDepthLimiter(max_depth=12).validation_rules

class SettlegraphSchema(SharedSubscriptions, strawberry.Schema):
    def process_errors(self, errors: Any, execution_context: Any = None) -> None:
        """Caller mistakes are answered, not logged as server errors; MaskInternalErrors logs the rest."""


schema = SettlegraphSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    config=StrawberryConfig(scalar_map=SCALAR_MAP),
    extensions=[
        MaskInternalErrors,
        OperationMetrics,
        lambda: AddValidationRules(DEPTH_RULES),
        lambda: MaxTokensLimiter(max_token_count=400_000),
        # Clients send the same few documents again and again: parse and validate each once.
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
    ],
)
