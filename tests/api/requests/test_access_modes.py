"""SPEC §10: introspection needs a caller; the zero set-up mode (no credentials, every caller ADMIN) answers only
requests addressed to a loopback name and WebSocket handshakes from loopback pages (no DNS rebinding)."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from tests.support.processes import Process, serve, stop

INTROSPECTION = "{ __schema { queryType { name } } }"


async def test_introspection_needs_an_authenticated_caller(gql):
    body = await gql.raw(INTROSPECTION, role=None)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED" and body.get("data") is None
    body = await gql.raw('{ __type(name: "Batch") { name } }', role=None)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await gql(INTROSPECTION, role="viewer"))["__schema"]["queryType"]["name"] == "Query"
    # GraphiQL itself loads for anyone; it works once the user gives a key in its header editor.
    page = await gql.http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "<html" in page.text.lower()


@pytest.fixture(scope="module")
async def zero_setup(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Process]:
    database = f"sqlite://{tmp_path_factory.mktemp('open') / 'settlegraph.db'}"
    process = await serve(database, credentials=False)
    try:
        yield process
    finally:
        await stop(process)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.0.0.2", "[::1]"])
async def test_the_zero_setup_mode_answers_loopback_hosts(zero_setup, host):
    port = zero_setup.base_url.rsplit(":", 1)[1]
    async with httpx.AsyncClient(base_url=zero_setup.base_url) as http:
        for header in (host, f"{host}:{port}"):
            response = await http.post("/graphql", json={"query": "{ settlementModels { name } }"},
                                       headers={"host": header})
            assert response.status_code == 200 and not response.json().get("errors"), response.text


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "192.0.2.1"])
async def test_the_zero_setup_mode_refuses_other_hosts(zero_setup, host):
    async with httpx.AsyncClient(base_url=zero_setup.base_url) as http:
        response = await http.post("/graphql", json={"query": 'mutation { createSettlementModel(input: '
                                                             '{name: "REBOUND", batchIntervalSeconds: 60}) '
                                                             "{ model { name } } }"},
                                   headers={"host": host})
        assert response.status_code == 403 and response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        models = (await http.post("/graphql", json={"query": "{ settlementModels { name } }"})).json()
    assert "REBOUND" not in {m["name"] for m in models["data"]["settlementModels"]}


async def _handshake(process: Process, **headers: str) -> dict:
    async with websockets.connect(process.base_url.replace("http://", "ws://") + "/graphql",
                                  subprotocols=["graphql-transport-ws"], additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        return json.loads(await ws.recv())


async def test_the_zero_setup_mode_takes_websockets_from_loopback_pages_only(zero_setup):
    assert (await _handshake(zero_setup, Origin="http://localhost:5173"))["type"] == "connection_ack"
    assert (await _handshake(zero_setup))["type"] == "connection_ack"  # a script, not a browser: no Origin
    with pytest.raises(websockets.InvalidStatus) as refused:
        await _handshake(zero_setup, Origin="http://evil.example")
    assert refused.value.response.status_code == 403


async def test_with_credentials_hosts_do_not_matter(gql, server):
    port = server.base_url.rsplit(":", 1)[1]
    body = (await gql.http.post("/graphql", json={"query": "{ __typename }"},
                                headers={"host": f"settlegraph.hub.example:{port}", "Authorization": "Bearer k-viewer"}
                                )).json()
    assert body["data"] == {"__typename": "Query"}
