"""UserError (the payload-level refusal of the contract) and the masking of unexpected errors."""
from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import FieldExtension, SchemaExtension
from strawberry.permission import BasePermission
from tortoise.exceptions import ValidationError as TortoiseValidationError

from app.core import errors
from app.core.errors import DomainError

log = logging.getLogger("settlegraph.graphql")


@strawberry.type
class UserError:
    code: str
    message: str
    field: list[str] | None = None

    @classmethod
    def of(cls, error: DomainError) -> UserError:
        return cls(code=error.code, message=error.message, field=error.field)


class UserErrors(FieldExtension):
    """The one place where a refusal becomes an answer: a DomainError raised by a mutation's resolver (the domain
    command it called refused, having changed nothing and audited the refusal) is returned as the payload's
    `userErrors`, its field path placed under `under` (the argument that carried the input, e.g. "input").

    A payload with required fields besides userErrors builds its refusal itself: `refused(error, arguments)`."""

    def __init__(self, under: str | None = None) -> None:
        super().__init__()
        self.under = under

    def apply(self, field: Any) -> None:
        self.field = field

    def resolve(self, next_: Callable[..., Any], source: Any, info: Any, **kwargs: Any) -> Any:
        raise TypeError("mutations are resolved asynchronously")  # pragma: no cover

    async def resolve_async(self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, **kwargs: Any) -> Any:
        try:
            return await next_(source, info, **kwargs)
        except DomainError as exc:
            error = UserError.of(exc.at(self.under) if self.under else exc)
            payload: Any = self.field.type  # resolved once the schema is built
            if hasattr(payload, "refused"):
                return payload.refused(error, kwargs)
            return payload(user_errors=[error])


def mutation(*, permission_classes: Sequence[type[BasePermission]], under: str | None = None,
             description: str | None = None) -> Any:
    """strawberry.mutation with its refusals answered as userErrors (UserErrors)."""
    return strawberry.mutation(permission_classes=list(permission_classes), extensions=[UserErrors(under)],
                               description=description)


# What the database refuses of a value the caller sent (a string longer than its column, a NUL character that
# PostgreSQL cannot store): the caller's input, not a server fault. Their SQLSTATEs: class 22, data exception.
_REFUSED_VALUES = frozenset({"22001", "22021", "22P05"})


def _refused_input(error: BaseException) -> tuple[str, str] | None:
    """(code, message) when `error` (or what caused it) is the caller's input refused below the domain."""
    if isinstance(error, RecursionError):
        return errors.BAD_REQUEST, "the document or its values are nested too deeply"
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, TortoiseValidationError):
            return errors.VALIDATION, f"a value does not fit: {seen}"
        if getattr(seen, "sqlstate", None) in _REFUSED_VALUES:
            return errors.VALIDATION, "a value does not fit its column or holds a character that cannot be stored"
        seen = seen.__cause__ or seen.__context__
    return None


def coded(error: GraphQLError) -> GraphQLError:
    """A GraphQL error of the document or its values (no exception behind it), given its stable code in place:
    input that does not coerce (a bad variable value) is VALIDATION, anything else (a syntax error, a document
    that does not validate) BAD_REQUEST."""
    extensions = dict(error.extensions or {})
    if "code" not in extensions:
        is_input = error.path is not None or error.message.startswith(("Variable '$", "Argument '"))
        extensions["code"] = errors.VALIDATION if is_input else errors.BAD_REQUEST
        error.extensions = extensions
    return error


class MaskInternalErrors(SchemaExtension):
    """Unexpected exceptions reach clients as INTERNAL with an id to quote; the stack trace goes to the log.

    GraphQL's own errors (parse, validation, variable coercion) and permission errors pass through with
    a stable code in `extensions.code`.
    """

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        found = getattr(result, "errors", None)
        if result is None or not found:
            return
        result.errors = [self._process(error) for error in found]

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
            return GraphQLError(error.message, error.nodes, error.source, error.positions, error.path,
                                extensions=coded(error).extensions)
        if isinstance(original, ValueError) and error.path is None:
            return GraphQLError(error.message, error.nodes, error.source, error.positions, error.path,
                                extensions={"code": "VALIDATION"})
        refused = _refused_input(original)
        if refused is not None:
            code, message = refused
            return GraphQLError(message, error.nodes, error.source, error.positions, error.path,
                                extensions={"code": code})
        error_id = uuid.uuid4().hex[:12]
        log.error("internal error %s at %s", error_id, error.path, exc_info=original)
        return GraphQLError(
            f"Internal error (id {error_id}); the operation did not complete.",
            error.nodes, error.source, error.positions, error.path,
            extensions={"code": "INTERNAL", "errorId": error_id},
        )
