"""SPEC §11: every operation's static cost is computed before it runs; above the limit it is refused and runs
nothing; below it the answer carries the cost."""
from __future__ import annotations

import pytest

from graphql_schema.limits import LIST_SIZE, cost_of
from graphql_schema.schema import schema
from tests.support.database import snapshot
from tests.support.transfers import record, transfer

CONSOLE_BOARD = """
query($first: Int) {
  batches(first: $first, filter: {statuses: [OPEN, CLOSED]}) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id name status currency transferCount windowStart
      accounts { participantId currency debit credit net } history { from to at actor reason } } }
  }
}
"""


def cost(document: str, variables: dict | None = None) -> int:
    from graphql import parse

    return cost_of(schema._schema, parse(document), None, variables)


def test_the_rules():
    assert cost("{ __typename }") == 0
    assert cost("{ settlementModels { name } }") == 1 + LIST_SIZE * 1
    # a page multiplies what it selects; its edges add no factor of their own
    assert cost("{ batches(first: 20) { totalCount edges { node { id } } } }") == 1 + 20 * (1 + (1 + (1 + 1)))
    assert cost("{ batches { edges { node { id } } } }") == 1 + 50 * 3  # the default page
    assert cost("query($n: Int) { batches(first: $n) { edges { node { id } } } }", {"n": 5}) == 1 + 5 * 3
    # nested lists multiply
    assert cost("{ batches(first: 10) { edges { node { accounts { net } } } } }") == 1 + 10 * (1 + (1 + (1 + 10)))


def test_the_console_stays_well_under_the_default_limit():
    assert cost(CONSOLE_BOARD, {"first": 50}) < schema_limit() / 5


def schema_limit() -> int:
    from app.core.settings import DEFAULT_MAX_QUERY_COST

    return DEFAULT_MAX_QUERY_COST


async def test_answers_carry_their_cost(gql):
    await record(gql, transfer("t-1"))
    body = await gql.raw(CONSOLE_BOARD, {"first": 10})
    assert not body.get("errors"), body
    assert body["extensions"]["cost"] == {"requested": cost(CONSOLE_BOARD, {"first": 10}),
                                          "limit": schema_limit()}


async def test_an_operation_above_the_limit_is_refused_before_it_runs(gql):
    await record(gql, transfer("t-1"))
    before = await snapshot()
    pages = " ".join(f"p{i}: batches(first: 500) {{ edges {{ node {{ accounts {{ net }} history {{ at }} }} }} }}"
                     for i in range(90))
    body = await gql.raw("{" + pages + "}")  # bench/hostile.py measures how fast such a refusal is
    assert body.get("data") is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
    assert error["extensions"]["cost"] > error["extensions"]["limit"] == schema_limit()
    mutation = "mutation {" + " ".join(
        f'm{i}: recordTransfers(transfers: [{{transferId: "c{i}", payerId: "a", payeeId: "b", amount: "1.00", '
        f'currency: "USD", committedAt: "2026-03-02T14:05:00Z"}}]) {{ results {{ batch {{ transfers(first: 500) '
        f"{{ edges {{ node {{ attributes {{ key }} }} }} }} }} }} }}" for i in range(20)) + "}"
    body = await gql.raw(mutation, role="admin")
    assert body["errors"][0]["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
    assert await snapshot() == before  # nothing ran


@pytest.mark.parametrize("first", [501, 100_000])
async def test_a_page_beyond_the_cap_is_refused_before_it_runs(gql, first):
    body = await gql.raw("query($n: Int) { batches(first: $n) { totalCount } }", {"n": first})
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION"


async def test_aliases_are_bounded(gql):
    body = await gql.raw("{" + " ".join(f"a{i}: __typename" for i in range(101)) + "}")
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    body = await gql.raw("{" + " ".join(f"a{i}: __typename" for i in range(50)) + "}")
    assert not body.get("errors")
