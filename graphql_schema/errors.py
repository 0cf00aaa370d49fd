"""UserError (the payload-level refusal of the contract) and the masking of unexpected errors."""
from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from app.errors import DomainError

log = logging.getLogger("settlegraph.graphql")


@strawberry.type
class UserError:
    code: str
    message: str
    field: list[str] | None = None

    @classmethod
    def of(cls, error: DomainError) -> UserError:
        return cls(code=error.code, message=error.message, field=error.field)


class MaskInternalErrors(SchemaExtension):
    """Unexpected exceptions reach clients as INTERNAL with an id to quote; the stack trace goes to the log.

    GraphQL's own errors (parse, validation, variable coercion) and permission errors pass through with
    a stable code in `extensions.code`.
    """

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if result is None or not errors:
            return
        result.errors = [self._process(error) for error in errors]

    def on_stream_result(self, result: Any) -> Iterator[None]:
        # Subscription events reach the client through this hook, not through on_operation.
        if getattr(result, "errors", None):
            result.errors = [self._process(error) for error in result.errors]
        yield

    @staticmethod
    def _process(error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, DomainError):
            return GraphQLError(error.message, error.nodes, error.source, error.positions, error.path,
                                extensions={"code": original.code})
        if original is None or isinstance(original, GraphQLError):
            extensions = dict(error.extensions or {})
            # Input that does not coerce (a bad variable value) is the caller's data; anything else without a
            # path is a malformed document.
            is_input = error.path is not None or error.message.startswith(("Variable '$", "Argument '"))
            extensions.setdefault("code", "VALIDATION" if is_input else "BAD_REQUEST")
            return GraphQLError(error.message, error.nodes, error.source, error.positions, error.path,
                                extensions=extensions)
        if isinstance(original, ValueError) and error.path is None:
            return GraphQLError(error.message, error.nodes, error.source, error.positions, error.path,
                                extensions={"code": "VALIDATION"})
        error_id = uuid.uuid4().hex[:12]
        log.error("internal error %s at %s", error_id, error.path, exc_info=original)
        return GraphQLError(
            f"Internal error (id {error_id}); the operation did not complete.",
            error.nodes, error.source, error.positions, error.path,
            extensions={"code": "INTERNAL", "errorId": error_id},
        )
