"""SPEC §11: nothing a caller sends becomes an internal error, and every refusal writes nothing.

Each case is sent through the real server as a careless or hostile client would; the answer must carry a stable
code, never INTERNAL or a plain-text error page, and the tables (but the audit log) must be as they were."""
from __future__ import annotations

import json

import pytest

from tests.support.database import snapshot
from tests.support.server import key_of
from tests.support.transfers import RECORD, record, transfer

ADMIN = {"Authorization": f"Bearer {key_of('admin')}"}


def codes(body: dict) -> list[str]:
    found = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
    assert "INTERNAL" not in found, body
    assert all(found), body  # every error carries a code
    return found


@pytest.fixture
async def unchanged(gql):
    """The tables (but the audit log) after the test are as before it."""
    await record(gql, transfer("seed-1"), transfer("seed-2", payer="dfsp-c"))
    before = await snapshot()
    yield
    assert await snapshot() == before


LONG = "x" * 5000


def long(document: str) -> str:
    return document.replace("<long>", LONG).replace("<digits>", "9" * 400)


# (document, variables, what the answer must be): "null" a lookup that finds nothing, a code otherwise.
LOOKUPS = [
    ('{ transfer(transferId: "<long>") { transferId } }', None, "null"),
    ('{ preparedTransfer(transferId: "<long>") { transferId } }', None, "null"),
    ('{ batch(ref: {name: "<long>"}) { id } }', None, "null"),
    ('{ batch(ref: {transferId: "<long>"}) { id } }', None, "null"),
    ('{ settlementModel(name: "<long>") { name } }', None, "null"),
    ('{ participant(id: "<long>") { id } }', None, "null"),
    ('{ batches(filter: {model: "<long>", currencies: ["<long>"]}) { totalCount } }', None, "empty"),
    ('{ matrix(id: "<digits>") { id } }', None, "VALIDATION"),
    ('{ grant(id: "<long>") { id } }', None, "null"),
]


@pytest.mark.parametrize(("document", "variables", "expected"), LOOKUPS)
async def test_overlong_lookups_find_nothing(gql, unchanged, document, variables, expected):
    body = await gql.raw(long(document), variables)
    found = codes(body)
    if expected == "null":
        assert not found and list(body["data"].values()) == [None], body
    elif expected == "empty":
        assert not found and body["data"]["batches"]["totalCount"] == 0, body
    else:
        assert found == [expected], body


MUTATIONS = [
    'mutation { closeBatch(ref: {name: "<long>"}) { userErrors { code } } }',
    'mutation { closeBatch(ref: {transferId: "<long>"}, reason: "<long>") { userErrors { code } } }',
    'mutation { createSettlementModel(input: {name: "<long>", batchIntervalSeconds: 60}) { userErrors { code } } }',
    'mutation { setSettlementModelActive(name: "<long>", active: false) { userErrors { code } } }',
    'mutation { createMatrix(input: {model: "<long>", period: {unit: DAY, start: "2026-03-02T00:00:00Z", '
    'end: "2026-03-03T00:00:00Z"}}) { userErrors { code } } }',
    'mutation { commitTransfer(transferId: "<long>") { userErrors { code } } }',
    'mutation { abortTransfer(transferId: "<long>", reason: "<long>") { userErrors { code } } }',
    'mutation { createGrant(input: {payerId: "<long>"}) { userErrors { code } } }',
]


@pytest.mark.parametrize("document", MUTATIONS)
async def test_overlong_arguments_of_mutations_are_refused_cleanly(gql, unchanged, document):
    body = await gql.raw(long(document))
    found = codes(body)
    user_errors = [e["code"] for payload in (body.get("data") or {}).values() if payload
                   for e in payload.get("userErrors", [])]
    assert found or user_errors, body
    assert set(user_errors) <= {"VALIDATION", "NOT_FOUND", "UNKNOWN_MODEL"}, body


async def test_a_nul_character_is_refused_wherever_it_is_sent(gql, unchanged):
    for document, variables in [
        ('{ transfer(transferId: "a\\u0000b") { transferId } }', None),
        ("query($n: String!) { settlementModel(name: $n) { name } }", {"n": "A\x00"}),
        ("mutation($r: String) { closeBatch(ref: {transferId: \"seed-1\"}, reason: $r) { userErrors { code } } }",
         {"r": "because\x00"}),
        ('mutation { createGrant(input: {payerId: "dfsp-a", interval: "R/2026-03-01T00:00:00Z/P1D\\u0000"}) '
         "{ userErrors { code } } }", None),
    ]:
        body = await gql.raw(document, variables)
        assert codes(body) == ["VALIDATION"], body


async def test_a_nul_in_one_transfer_rejects_that_transfer_alone(gql):
    bad_id = transfer("t\x00-1")
    bad_attribute = transfer("t-2", attributes=[{"key": "note", "value": "a\x00b"}])
    good = transfer("t-3")
    answer = (await gql(RECORD, {"t": [bad_id, bad_attribute, good]}, role="ingest"))["recordTransfers"]
    assert [r["outcome"] for r in answer["results"]] == ["REJECTED", "REJECTED", "RECORDED"]
    assert [r["error"]["code"] for r in answer["results"][:2]] == ["VALIDATION", "VALIDATION"]


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
async def test_a_date_time_beyond_the_representable_range_is_refused(gql, unchanged, moment):
    inline = ('mutation { recordTransfers(transfers: [{transferId: "d-1", payerId: "a", payeeId: "b", '
              f'amount: "1.00", currency: "USD", committedAt: "{moment}"}}]) {{ recorded }} }}')
    assert codes(await gql.raw(inline)) == ["VALIDATION"]
    as_variable = await gql.raw(RECORD, {"t": [transfer("d-1", committed_at=moment)]})
    assert codes(as_variable) == ["VALIDATION"]


async def test_a_syntax_error_carries_a_code(gql, unchanged):
    assert codes(await gql.raw("{ batches( }")) == ["BAD_REQUEST"]
    assert codes(await gql.raw("")) and codes(await gql.raw("query { }"))


async def test_thousands_of_aliased_mutations_are_refused_cleanly(gql, unchanged):
    document = "mutation {" + " ".join(
        f'm{i}: closeBatch(ref: {{transferId: "seed-1"}}) {{ userErrors {{ code }} }}' for i in range(3000)) + "}"
    body = await gql.raw(document)
    assert codes(body) and body.get("data") is None, body


async def test_a_document_nested_thousands_deep_is_refused_cleanly(gql, unchanged):
    deep = "{ batches { edges { node { " * 400 + "id" + " } } }" * 400 + " }"
    assert codes(await gql.raw(deep))
    nested_value = "{ batches(filter: {currencies: " + "[" * 3000 + '"USD"' + "]" * 3000 + "}) { totalCount } }"
    assert codes(await gql.raw(nested_value))


BODIES = [
    (b"null", "application/json"),
    (b'"a string"', "application/json"),
    (b"42", "application/json"),
    (b"[1, 2]", "application/json"),
    (b'[{"query": "{ __typename }"}]', "application/json"),  # batching is off
    (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    (b'{"query": "{ __typename }", "variables": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "application/json"),
    (b"\xff\xfe\xfd not utf-8", "application/json"),
    (b'{"query": "{ __typename }", "variables": {"n": ' + b"9" * 10_000 + b"}}", "application/json"),
    (b"{not json", "application/json"),
    (b'{"query": 5}', "application/json"),
    (b'{"query": "{ __typename }", "variables": [1]}', "application/json"),
    (b"query=%7B__typename%7D", "application/x-www-form-urlencoded"),
]


@pytest.mark.parametrize(("body", "content_type"), BODIES)
async def test_malformed_bodies_get_a_json_400(gql, unchanged, body, content_type):
    response = await gql.http.post("/graphql", content=body, headers={**ADMIN, "content-type": content_type})
    assert response.status_code == 400, response.text[:300]
    assert response.headers["content-type"].startswith("application/json"), response.text[:300]
    assert codes(response.json()) == ["BAD_REQUEST"]


async def test_other_methods_and_queries_in_the_url(gql, unchanged):
    response = await gql.http.put("/graphql", content=b"{}", headers=ADMIN)
    assert response.status_code == 405 and codes(response.json()) == ["BAD_REQUEST"]
    response = await gql.http.get("/graphql", params={"query": "{ __typename }", "variables": "[[["}, headers=ADMIN)
    assert response.status_code == 400 and codes(response.json()) == ["BAD_REQUEST"]
    response = await gql.http.get("/graphql", params={"query": "{ __typename }"}, headers=ADMIN)
    assert response.status_code == 200 and response.json()["data"] == {"__typename": "Query"}


async def test_a_refused_mutation_over_http_changes_nothing(gql, unchanged):
    body = await gql.raw(RECORD, {"t": [transfer("x", amount="1.001")]}, role="ingest")
    assert body["data"]["recordTransfers"]["rejected"] == 1
    body = json.loads(json.dumps(body))
    assert body["data"]["recordTransfers"]["results"][0]["error"]["code"] == "AMOUNT_SCALE"
