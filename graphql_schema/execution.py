"""How operations are executed: graphql-core's executor, with plain fields answered without its per-field steps.

A plain field is an attribute of its object that Strawberry would read with no resolver, argument, field extension
or permission (a "basic field", e.g. TransferResult.transferId). For each such field graphql-core builds a resolve
info, calls Strawberry's resolver and completes the value in several steps: about 3 µs a field, and
recordTransfers answers 1,000 results of three plain fields (a quarter of the server's CPU for the call). Here a
plain field whose value is null (in a nullable field), or a str, int, float, enum member or datetime that its scalar
or enum type coerces, is answered at once with that coercion, as the executor's completion would answer it.
Anything else (an object or list, a null in a non-null field, a value the type refuses, an exception, an awaitable,
a schema extension that resolves fields) goes graphql-core's general way, with its usual errors.
"""
from __future__ import annotations

import enum
from datetime import datetime
from functools import lru_cache
from typing import Any

from graphql import GraphQLLeafType, GraphQLObjectType, Undefined, get_nullable_type, is_leaf_type, is_non_null_type
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

# Values a leaf type's serialization is trusted with here; any other value is completed the general way.
PLAIN_VALUES = (str, int, float, enum.Enum, datetime)


@lru_cache(maxsize=4096)
def plain_field(parent_type: GraphQLObjectType, name: str) -> tuple[str, GraphQLLeafType | None, bool] | None:
    """(attribute, leaf type or None for an object or list, nullable) of a plain field; None for any other."""
    field = parent_type.fields.get(name)
    if field is None or field.args:
        return None
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    # Strawberry answers a basic field with a resolver of its own marked _is_default (no exception handlers).
    if not isinstance(definition, StrawberryField) or not definition.is_basic_field or not getattr(
            field.resolve, "_is_default", False):
        return None
    nullable = not is_non_null_type(field.type)
    named = get_nullable_type(field.type)
    return definition.python_name, named if is_leaf_type(named) else None, nullable


class PlainFieldsExecution(StrawberryGraphQLCoreExecutionContext):
    def execute_field(self, parent_type: GraphQLObjectType, source: Any, field_details_list: Any, path: Any,
                      position_context: Any) -> Any:
        plain = plain_field(parent_type, field_details_list[0].node.name.value)
        if plain is not None and not getattr(self.middleware_manager, "middlewares", None):
            attribute, leaf, nullable = plain
            value = getattr(source, attribute, Undefined)
            if value is None and nullable:
                return None
            if leaf is not None and isinstance(value, PLAIN_VALUES):
                try:  # what the executor's completion of a leaf calls
                    answer = leaf.coerce_output_value(value)
                except Exception:  # the general way reports it
                    answer = None
                if answer is not None and answer is not Undefined:
                    return answer
        return super().execute_field(parent_type, source, field_details_list, path, position_context)
