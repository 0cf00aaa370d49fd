"""What a request may ask, decided before anything runs (SPEC §10, §11).

- Introspection (`__schema`, `__type`) needs an authenticated caller, like every operation.
- No string argument may carry a NUL character (PostgreSQL cannot store one). recordTransfers' transfers are
  the exception: there one bad transfer is REJECTED alone (app/batches/transfers.py), the others are recorded.
- Every operation has a static cost, computed from the document and its variables (`cost_of`): each field
  costs 1; a field that takes `first` multiplies the cost of what it selects by the page asked for (or its
  default); any other list multiplies it by LIST_SIZE; the `edges` of a connection add no factor of their own
  (the page already counts them); `__typename` is free, and introspection costs INTROSPECTION_COST. An
  operation above the limit (SETTLEGRAPH_MAX_QUERY_COST) is refused with COST_LIMIT_EXCEEDED and runs nothing;
  every answer carries `extensions.cost` (requested and limit). A page larger than MAX_PAGE is refused too.
- Before the document is validated (some of GraphQL's validation rules take time quadratic in the fields of a
  selection), it may hold at most MAX_ALIASES aliases and MAX_FIELDS fields: thousands of aliased fields are
  refused in a linear count, not after seconds of validation. Depth is bounded by a validation rule
  (graphql_schema/schema.py).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
)
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from app.core import errors
from app.core.settings import DEFAULT_MAX_QUERY_COST
from graphql_schema.pagination import DEFAULT_PAGE, MAX_PAGE

MAX_ALIASES = 100
MAX_FIELDS = 2_000
LIST_SIZE = 10  # what a list without `first` counts as (a batch's accounts, a matrix's totals, ...)
INTROSPECTION_COST = 1_000  # a whole introspection query: bounded by the schema, whatever it selects
INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})
# Arguments whose strings are checked by the domain, item by item, instead of here.
CHECKED_BY_THE_DOMAIN = frozenset({("recordTransfers", "transfers")})


def refusal(message: str, code: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


class _Walk:
    """One pass over the chosen operation: its cost, its introspection fields, its NUL-bearing arguments."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode,
                 variables: Mapping[str, Any]) -> None:
        self.schema = schema
        self.variables = variables
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.introspects = False
        self.nul_at: str | None = None
        root = schema.get_root_type(operation.operation)
        assert root is not None
        self.cost = self.selections(root, operation.selection_set, set())

    def fields(self, selection_set: SelectionSetNode, seen: set[str]) -> Iterator[FieldNode]:
        """The fields of a selection set, fragments spread (each fragment once per path: no cycles)."""
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                yield from self.fields(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in seen:
                    yield from self.fields(fragment.selection_set, seen | {name})

    def selections(self, parent: GraphQLNamedType, selection_set: SelectionSetNode, seen: set[str]) -> int:
        total = 0
        for node in self.fields(selection_set, seen):
            name = node.name.value
            if name == "__typename":
                continue
            if name in INTROSPECTION_FIELDS:
                self.introspects = True
                total += INTROSPECTION_COST
                continue
            field = parent.fields.get(name) if isinstance(parent, GraphQLObjectType) else None
            if field is None:  # an interface or union member, or a mistake validation already reported
                total += 1
                continue
            arguments = {a.name.value: a.value for a in node.arguments or ()}
            for argument, value in arguments.items():
                if (name, argument) not in CHECKED_BY_THE_DOMAIN and self.nul_at is None and self.has_nul(value):
                    self.nul_at = f"{name}({argument})"
            factor = 1
            if "first" in field.args:
                default = field.args["first"].default_value
                factor = self.page(arguments.get("first"), default if isinstance(default, int) else DEFAULT_PAGE)
            elif is_list_type(get_nullable_type(field.type)) and not (
                    name == "edges" and parent.name.endswith("Connection")):
                factor = LIST_SIZE
            children = 0
            if node.selection_set is not None:
                children = self.selections(get_named_type(field.type), node.selection_set, seen)
            total += 1 + factor * children
        return total

    def page(self, value: ValueNode | None, default: int) -> int:
        if isinstance(value, VariableNode):
            given = self.variables.get(value.name.value, default)
        elif isinstance(value, IntValueNode):
            given = int(value.value)
        else:
            given = default
        if not isinstance(given, int) or isinstance(given, bool):
            return default  # not an Int: variable coercion refuses it
        if given > MAX_PAGE:
            raise refusal(f"first is {given}: a page holds at most {MAX_PAGE}", errors.VALIDATION)
        return max(given, 1)

    def has_nul(self, value: ValueNode | Any) -> bool:
        if isinstance(value, StringValueNode):
            return "\x00" in value.value
        if isinstance(value, VariableNode):
            return _carries_nul(self.variables.get(value.name.value))
        if isinstance(value, ListValueNode):
            return any(self.has_nul(v) for v in value.values)
        if isinstance(value, ObjectValueNode):
            return any(self.has_nul(f.value) for f in value.fields)
        return False


def _carries_nul(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if depth > 64:  # deeper than any input type of the schema: coercion refuses it anyway
        return False
    if isinstance(value, list):
        return any(_carries_nul(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_carries_nul(k, depth + 1) or _carries_nul(v, depth + 1) for k, v in value.items())
    return False


def cost_of(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
            variables: Mapping[str, Any] | None = None) -> int:
    """The static cost of the operation (the rules above); 0 when the document names no such operation."""
    operation = get_operation_ast(document, operation_name)
    return _Walk(schema, document, operation, variables or {}).cost if operation is not None else 0


def count_fields(document: DocumentNode) -> tuple[int, int]:
    """(fields, aliases) written in the document, fragments counted once: a linear walk."""
    fields = aliases = 0
    stack: list[Any] = [d.selection_set for d in document.definitions if hasattr(d, "selection_set")]
    while stack:
        selection_set = stack.pop()
        if selection_set is None:
            continue
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                fields += 1
                aliases += selection.alias is not None
            stack.append(getattr(selection, "selection_set", None))
    return fields, aliases


class RequestLimits(SchemaExtension):
    """Refuses, before validation and before execution, what SPEC §10/§11 forbid; reports every answered
    operation's cost."""

    cost: int | None = None
    limit: int = DEFAULT_MAX_QUERY_COST

    def on_validate(self) -> Iterator[None]:
        document = self.execution_context.graphql_document
        if document is not None:
            fields, aliases = count_fields(document)
            if aliases > MAX_ALIASES:
                raise refusal(f"the document has {aliases} aliases; at most {MAX_ALIASES} are answered",
                              errors.BAD_REQUEST)
            if fields > MAX_FIELDS:
                raise refusal(f"the document selects {fields} fields; at most {MAX_FIELDS} are answered",
                              errors.BAD_REQUEST)
        yield

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        operation = get_operation_ast(document, context.operation_name) if document is not None else None
        if document is not None and operation is not None:
            settings = getattr(context.context, "settings", None)
            self.limit = getattr(settings, "max_query_cost", DEFAULT_MAX_QUERY_COST)
            walk = _Walk(context.schema._schema, document, operation, context.variables or {})
            if walk.introspects and getattr(context.context, "principal", None) is None:
                raise refusal("introspection needs an authenticated caller: send Authorization: Bearer <key>",
                              errors.UNAUTHENTICATED)
            if walk.nul_at is not None:
                raise refusal(f"{walk.nul_at}: strings may not contain NUL (\\u0000)", errors.VALIDATION)
            self.cost = walk.cost
            if walk.cost > self.limit:
                raise refusal(f"the operation costs {walk.cost}, above the limit of {self.limit}: ask for smaller "
                              "pages or fewer fields", errors.COST_LIMIT_EXCEEDED, cost=walk.cost, limit=self.limit)
        yield

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        return {"cost": {"requested": self.cost, "limit": self.limit}}
