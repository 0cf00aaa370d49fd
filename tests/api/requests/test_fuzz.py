"""SPEC §11 under generated input: operations built from the live schema (hypothesis-graphql) are sent as ADMIN to
a real `settlegraph serve` on each database; no answer may be an INTERNAL error, an HTTP 5xx, or slower than
SLOW seconds. Afterwards the books still balance.

Both valid operations and invalid ones (hypothesis-graphql's negative mode) are sent, NUL characters included.
Bounded for CI: SETTLEGRAPH_FUZZ_EXAMPLES (default 75) of each kind (queries, mutations; valid, invalid) per
database; set it to thousands by hand for a longer hunt."""
from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes, queries

from graphql_schema.schema import schema
from tests.support.processes import Process, serve, stop
from tests.support.server import POSTGRES_URL, drop_postgres_database, fresh_postgres_database, key_of
from tests.support.transfers import RECORD, transfer

EXAMPLES = int(os.environ.get("SETTLEGRAPH_FUZZ_EXAMPLES", "75"))
SLOW = 5.0
SCHEMA = schema.as_str()
ADMIN = {"Authorization": f"Bearer {key_of('admin')}"}

# Scalars of the contract, as a careless or hostile client sends them: well formed, nearly, or not at all.
AMOUNTS = st.one_of(st.from_regex(r"\A-?[0-9]{1,20}(\.[0-9]{1,20})?\Z"), st.text(max_size=30),
                    st.sampled_from(["1.00", "0", "-1", "1e5", "NaN", "99999999999999999999.99"]))
MOMENTS = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00", "2026-03-02T14:05:00Z",
                     "2026-03-02T14:05:00", "not a date"]),
    st.text(max_size=40),
)
SCALARS = {"Amount": AMOUNTS.map(nodes.String), "DateTime": MOMENTS.map(nodes.String),
           "JSON": st.just(nodes.String("{}"))}
PARAMETERS = (settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                       suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[tuple[Process, str]]:
    dropped = None
    if request.param == "postgres":
        if not POSTGRES_URL:
            pytest.skip("SETTLEGRAPH_TEST_POSTGRES_URL is not set")
        database, dropped = await fresh_postgres_database(POSTGRES_URL)
    else:
        database = f"sqlite://{tmp_path_factory.mktemp('fuzz') / 'settlegraph.db'}"
    process = await serve(database)
    try:
        async with httpx.AsyncClient(base_url=process.base_url, timeout=30) as http:  # something to find
            transfers = [transfer(f"f-{i}", payer=f"dfsp-{i % 3}", payee=f"dfsp-{(i + 1) % 3}") for i in range(12)]
            await http.post("/graphql", json={"query": RECORD, "variables": {"t": transfers}}, headers=ADMIN)
        yield process, database
        await _books_balance(database)
    finally:
        await stop(process)
        if dropped and POSTGRES_URL:
            await drop_postgres_database(POSTGRES_URL, dropped)


def _send(process: Process, document: str) -> None:
    started = time.perf_counter()
    response = httpx.post(f"{process.base_url}/graphql", json={"query": document}, headers=ADMIN, timeout=60)
    elapsed = time.perf_counter() - started
    assert response.status_code < 500, (response.status_code, response.text[:500], document)
    body: Any = response.json()
    codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
    assert "INTERNAL" not in codes and all(codes), (body, document)
    assert elapsed < SLOW, (elapsed, document)


@pytest.mark.parametrize("operations", [queries, mutations])
@pytest.mark.parametrize("mode", [Mode.POSITIVE, Mode.NEGATIVE])  # valid operations, and invalid ones
def test_generated_operations(target, operations, mode):
    @PARAMETERS
    @given(operations(SCHEMA, custom_scalars=SCALARS, mode=mode))
    def run(document: str) -> None:
        _send(target[0], document)

    run()


BALANCE = """
SELECT b.id FROM batch b
LEFT JOIN (SELECT batch_id, SUM(debit) AS d, SUM(credit) AS c FROM batch_account GROUP BY batch_id) a
  ON a.batch_id = b.id
LEFT JOIN (SELECT batch_id, SUM(amount) AS s FROM transfer GROUP BY batch_id) t ON t.batch_id = b.id
WHERE COALESCE(a.d, 0) <> COALESCE(t.s, 0) OR COALESCE(a.c, 0) <> COALESCE(t.s, 0)
"""


async def _books_balance(database: str) -> None:
    """Every batch's accounts sum to its transfers on both sides, so its nets sum to zero (SPEC §4)."""
    if database.startswith("sqlite://"):
        import sqlite3

        with sqlite3.connect(database.removeprefix("sqlite://")) as conn:
            broken = conn.execute(BALANCE).fetchall()
    else:
        conn = await asyncpg.connect(database.replace("postgres://", "postgresql://", 1))
        try:
            broken = await conn.fetch(BALANCE)
        finally:
            await conn.close()
    assert not broken, f"batches whose totals differ from their transfers: {broken}"
