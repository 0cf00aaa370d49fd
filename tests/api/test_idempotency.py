"""SPEC §12: a mutation retried with the same idempotency key and arguments gets its first answer again and changes
nothing; the same key with other arguments is refused; concurrent retries never run it twice; keys outlive a
restart and expire."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from app import idempotency
from app.core import clock
from models.matrices import SettlementMatrix
from models.settlement import AuditEntry, IdempotencyKey
from tests.support.database import snapshot
from tests.support.transfers import record, transfer

CREATE = """mutation($k: String, $start: DateTime!) {
  createMatrix(idempotencyKey: $k, input: {model: "DEFAULT",
      period: {unit: DAY, start: $start, end: "2026-03-03T00:00:00Z"}}) {
    matrix { id status checksum } userErrors { code message } } }"""
DAY = "2026-03-02T00:00:00Z"
SETTLE = """mutation($id: ID!, $k: String) { settleMatrix(id: $id, idempotencyKey: $k) {
  report { id participants { participantId net } } userErrors { code } } }"""
REQUEST = """mutation($id: ID!) { requestSettlement(id: $id) { matrix { status } userErrors { code } } }"""


async def test_a_retry_gets_the_first_answer_and_changes_nothing(gql):
    await record(gql, transfer("t-1"))
    first = (await gql(CREATE, {"k": "create-1", "start": DAY}, role="operator"))["createMatrix"]
    before = await snapshot()
    audited = await AuditEntry.all().count()
    again = (await gql(CREATE, {"k": "create-1", "start": DAY}, role="operator"))["createMatrix"]
    assert again == first
    assert await SettlementMatrix.all().count() == 1
    assert await snapshot() == before  # nothing ran: no matrix, no key, nothing else
    assert await AuditEntry.all().count() == audited


async def test_another_caller_has_keys_of_its_own(gql):
    first = (await gql(CREATE, {"k": "same", "start": DAY}, role="operator"))["createMatrix"]
    other = (await gql(CREATE, {"k": "same", "start": DAY}, role="operator2"))["createMatrix"]
    assert first["matrix"]["id"] != other["matrix"]["id"]


async def test_the_same_key_with_other_arguments_is_refused(gql):
    await gql(CREATE, {"k": "create-2", "start": DAY}, role="operator")
    before = await snapshot()
    body = await gql.raw(CREATE, {"k": "create-2", "start": "2026-03-01T00:00:00Z"}, role="operator")
    assert body["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_REUSED" and body.get("data") is None
    body = await gql.raw(REQUEST.replace("requestSettlement(id: $id)", 'requestSettlement(id: $id, '
                                          'idempotencyKey: "create-2")'), {"id": "1"}, role="operator")
    assert body["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await snapshot() == before


async def test_without_a_key_every_call_runs(gql):
    await gql(CREATE, {"start": DAY}, role="operator")
    await gql(CREATE, {"start": DAY}, role="operator")
    assert await SettlementMatrix.all().count() == 2


async def test_concurrent_calls_with_one_key_make_one_matrix(gql):
    answers = await asyncio.gather(*(gql(CREATE, {"k": "race", "start": DAY}, role="operator")
                                     for _ in range(8)))
    assert await SettlementMatrix.all().count() == 1
    assert len({a["createMatrix"]["matrix"]["id"] for a in answers}) == 1


async def test_a_refusal_is_an_answer_too_and_an_error_keeps_no_key(gql):
    await record(gql, transfer("t-1"))
    created = (await gql(CREATE, {"start": DAY}, role="operator"))["createMatrix"]["matrix"]
    await gql(REQUEST, {"id": created["id"]}, role="operator")
    forbidden = await gql.raw(SETTLE, {"id": created["id"], "k": "settle-0"}, role="operator2")
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert not await IdempotencyKey.filter(key="settle-0").exists()  # no answer: a retry runs
    first = (await gql(SETTLE, {"id": created["id"], "k": "settle-1"}, role="settler"))["settleMatrix"]
    assert first["report"] and not first["userErrors"]
    again = (await gql(SETTLE, {"id": created["id"], "k": "settle-1"}, role="settler"))["settleMatrix"]
    assert again == first  # not "SETTLED already": the first answer, the report included
    refused = (await gql(SETTLE, {"id": created["id"], "k": "settle-2"}, role="settler"))["settleMatrix"]
    assert [e["code"] for e in refused["userErrors"]] == ["INVALID_TRANSITION"]
    assert (await gql(SETTLE, {"id": created["id"], "k": "settle-2"}, role="settler"))["settleMatrix"] == refused


async def test_a_document_with_a_key_holds_one_mutation(gql):
    body = await gql.raw("""mutation { a: createMatrix(idempotencyKey: "x", input: {model: "DEFAULT",
        period: {unit: DAY, start: "2026-03-02T00:00:00Z", end: "2026-03-03T00:00:00Z"}}) { matrix { id } }
        b: closeBatch(ref: {id: "1"}) { batch { id } } }""", role="admin")
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert await SettlementMatrix.all().count() == 0


async def test_a_key_outlives_a_restart(gql, server, tmp_path):
    """The first answer is in the database: a new server process replays it."""
    from tests.support.processes import serve, stop

    first = (await gql(CREATE, {"k": "restart", "start": DAY}, role="operator"))["createMatrix"]
    if server.backend == "sqlite":
        pytest.skip("the embedded database is the running test server's own file (one process)")
    process = await serve(server.database_url)
    try:
        again = await process.gql(CREATE, {"k": "restart", "start": DAY}, role="operator")
    finally:
        await stop(process)
    assert again["createMatrix"] == first
    assert await SettlementMatrix.all().count() == 1


async def test_expired_keys_are_purged_and_can_be_used_again(gql):
    await gql(CREATE, {"k": "old", "start": DAY}, role="operator")
    await IdempotencyKey.filter(key="old").update(expires_at=clock.now() - timedelta(seconds=1))
    assert await idempotency.purge() == 1
    assert await IdempotencyKey.all().count() == 0
    await gql(CREATE, {"k": "old", "start": DAY}, role="operator")
    assert await SettlementMatrix.all().count() == 2


async def test_an_overlong_key_is_refused(gql):
    body = await gql.raw(CREATE, {"k": "k" * 300, "start": DAY}, role="operator")
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert await SettlementMatrix.all().count() == 0
