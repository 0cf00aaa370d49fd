"""The root schema, merged from the domain Query and Mutation types."""
from __future__ import annotations

import logging
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

from app.core.errors import BAD_REQUEST, DomainError
from graphql_schema.audit import schema as audit
from graphql_schema.batches import schema as batches
from graphql_schema.errors import MaskInternalErrors, coded
from graphql_schema.execution import PlainFieldsExecution
from graphql_schema.grants import schema as grants
from graphql_schema.idempotency import IdempotencyKeys
from graphql_schema.limits import RequestLimits
from graphql_schema.matrices import schema as matrices
from graphql_schema.operation_metrics import OperationMetrics
from graphql_schema.participants import schema as participants
from graphql_schema.scalars import SCALAR_MAP
from graphql_schema.settlement_models import schema as settlement_models
from graphql_schema.shared_subscriptions import SharedSubscriptions
from graphql_schema.subscriptions import Subscription
from graphql_schema.transfers import schema as transfers
from graphql_schema.viewer import schema as viewer

log = logging.getLogger("settlegraph.graphql")

Query = merge_types("Query", (settlement_models.Query, batches.Query, transfers.Query, participants.Query,
                               grants.Query, matrices.Query, audit.Query, viewer.Query))
Mutation = merge_types("Mutation", (settlement_models.Mutation, transfers.Mutation, batches.Mutation, grants.Mutation,
                                     matrices.Mutation))
# The depth of a document (SPEC §11), checked by validation before anything runs (its aliases and fields are
# counted before validation, graphql_schema/limits.py). Built once: the rule classes are part of the validation
# cache's key, so a new class per request would never hit it.
MAX_DEPTH = 12
# Parsing costs time in proportion to the document's tokens: large inputs travel as variables, not inline.
MAX_TOKENS = 5_000
DEPTH_RULES = QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules

class SettlegraphSchema(SharedSubscriptions, strawberry.Schema):
    def process_errors(self, errors: Any, execution_context: Any = None) -> None:
        """Caller mistakes are answered, not logged as server errors; MaskInternalErrors logs the rest. A document
        refused before execution (it does not parse or validate) never reaches the extensions' operation hook:
        its errors get their code here, BAD_REQUEST also when a validation rule failed on it."""
        before_execution = getattr(execution_context, "result", None) is None
        for error in errors:
            if error.original_error is None:
                coded(error)
            elif before_execution and not isinstance(error.original_error, DomainError):
                log.info("a document was refused before execution: %s", error.message)
                error.extensions = {**(error.extensions or {}), "code": BAD_REQUEST}


schema = SettlegraphSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    config=StrawberryConfig(scalar_map=SCALAR_MAP),
    execution_context_class=PlainFieldsExecution,
    extensions=[
        MaskInternalErrors,
        OperationMetrics,
        RequestLimits,
        IdempotencyKeys,  # after the limits: a refused document claims no key
        lambda: AddValidationRules(DEPTH_RULES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        # Clients send the same few documents again and again: parse and validate each once.
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
    ],
)
