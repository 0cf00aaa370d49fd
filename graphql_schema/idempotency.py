"""Idempotency keys at the API (SPEC §12): a mutation sent with `idempotencyKey` is answered once; a retry with the
same key and arguments gets the first answer again (its data, as first selected) and runs nothing
(app/idempotency.py keeps the keys). A document that uses a key holds that one mutation."""
from __future__ import annotations

import dataclasses
import enum
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated, Any

import strawberry
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import FieldNode, GraphQLError, OperationType
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from app import idempotency
from app.core import errors
from app.core.errors import DomainError

IdempotencyKey = Annotated[str | None, strawberry.argument(
    description="Retries with the same key and arguments get the first answer and change nothing (SPEC §12).")]
ARGUMENT = "idempotencyKey"


def _plain(value: Any) -> Any:
    """Coerced argument values as plain JSON-able data, the same for the same arguments."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class IdempotencyKeys(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        claimed, alias = None, ""
        keyed = self._keyed_mutation()
        if keyed is not None:
            alias, name, key, arguments = keyed
            context = self.execution_context.context
            caller = context.principal.name if getattr(context, "principal", None) else "anonymous"
            hours = getattr(getattr(context, "settings", None), "idempotency_hours", 24)
            try:
                found = await idempotency.claim(caller, key, name, idempotency.digest(caller, name, arguments),
                                                timedelta(hours=hours))
            except DomainError as exc:
                raise GraphQLError(exc.message, extensions={"code": exc.code}) from None
            if found.answer is not None:  # the first answer, again: nothing runs
                self.execution_context.result = GraphQLExecutionResult(data={alias: found.answer["value"]})
            claimed = found.row
        yield
        if claimed is not None:
            result = self.execution_context.result
            data = getattr(result, "data", None)
            if data is not None and not getattr(result, "errors", None):
                await idempotency.answer(claimed, data.get(alias))
            else:  # failed without an answer: a retry runs
                await idempotency.release(claimed)

    def _keyed_mutation(self) -> tuple[str, str, str, dict[str, Any]] | None:
        """(response key, mutation, idempotency key, its other arguments) of a mutation sent with a key."""
        context = self.execution_context
        document = context.graphql_document
        operation = get_operation_ast(document, context.operation_name) if document is not None else None
        if operation is None or operation.operation is not OperationType.MUTATION:
            return None
        schema = context.schema._schema
        fields = [s for s in operation.selection_set.selections if isinstance(s, FieldNode)]
        if not any(a.name.value == ARGUMENT for node in fields for a in node.arguments or ()):
            return None
        variables = get_variable_values(schema, operation.variable_definitions or (), context.variables or {})
        if isinstance(variables, list):
            return None  # variables that do not coerce: the execution reports them
        keyed = []
        for node in fields:
            definition = schema.mutation_type.fields.get(node.name.value) if schema.mutation_type else None
            if definition is None or ARGUMENT not in definition.args:
                continue
            try:
                arguments = get_argument_values(definition, node, variables)
            except GraphQLError:
                return None  # the execution reports the bad argument
            key = arguments.pop(ARGUMENT, None)
            if key is not None:
                keyed.append((node.alias.value if node.alias else node.name.value, node.name.value, key,
                              _plain(arguments)))
        if not keyed:
            return None
        if len(operation.selection_set.selections) > 1:
            raise GraphQLError("a document sent with an idempotencyKey holds that one mutation",
                               extensions={"code": errors.BAD_REQUEST})
        return keyed[0]
