"""Plain fields answered by PlainFieldsExecution give the same data and errors as graphql-core's general way."""
from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import strawberry
from strawberry.schema.config import StrawberryConfig

from graphql_schema.execution import PlainFieldsExecution
from graphql_schema.scalars import SCALAR_MAP, Amount


@strawberry.enum
class Outcome(enum.StrEnum):
    RECORDED = "RECORDED"
    REJECTED = "REJECTED"


@strawberry.type
class Code:
    code: str


@strawberry.type
class Item:
    text: str
    maybe_text: str | None
    number: int
    ratio: float
    outcome: Outcome
    maybe_outcome: Outcome | None
    amount: Amount
    at: datetime
    code: Code | None
    codes: list[str]

    @strawberry.field
    def resolved(self) -> str:
        return self.text.upper()


def item(**overrides: Any) -> Item:
    values: dict[str, Any] = dict(
        text="a", maybe_text=None, number=3, ratio=0.5, outcome=Outcome.RECORDED, maybe_outcome=None,
        amount=Amount("12.50"), at=datetime(2026, 3, 2, 16, 5, tzinfo=timezone(timedelta(hours=2))),
        code=Code(code="X"), codes=["p", "q"])
    values.update(overrides)
    return Item(**values)


ITEMS: list[Item] = []


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return ITEMS


QUERY = """{ items { text maybeText number ratio outcome maybeOutcome amount at code { code } codes resolved
                     again: text __typename } }"""


def run(execution: Any) -> tuple[Any, list[str]]:
    schema = strawberry.Schema(query=Query, config=StrawberryConfig(scalar_map=SCALAR_MAP),
                               execution_context_class=execution)
    result = schema.execute_sync(QUERY)
    return result.data, sorted(f"{e.path}: {e.message}" for e in result.errors or ())


@pytest.mark.parametrize("items", [
    [item(), item(maybe_text="b", maybe_outcome=Outcome.REJECTED, code=None, at=datetime(2026, 1, 1, tzinfo=UTC))],
    [item(text=None)],  # null in a non-null field
    [item(number="not a number")],  # a value the type refuses
    [item(number=2**40)],  # out of Int's range
    [item(ratio=float("nan"))],
    [item(outcome="RECORDED")],  # not a member of the enum
    [item(maybe_text=ValueError("an exception as a value"))],
    [item(text=True)],
    [item(), item(number=None), item()],
], ids=["ok", "null", "refused", "range", "nan", "enum", "exception", "bool", "mixed"])
def test_same_answer_as_the_general_way(items: list[Item]) -> None:
    ITEMS[:] = items
    assert run(PlainFieldsExecution) == run(None)
