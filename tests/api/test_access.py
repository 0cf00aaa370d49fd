"""Access (SPEC §10, RUNNING.md): keys and roles on every operation, the audit log, WebSocket auth."""
from __future__ import annotations

import json

import pytest
import websockets

from models.settlement import AuditEntry, SettlementModel
from tests.support.transfers import RECORD, transfer

CREATE = """mutation { createSettlementModel(input: {name: "HOURLY", batchIntervalSeconds: 3600}) {
  model { name } userErrors { code } } }"""


async def test_missing_and_wrong_keys_are_unauthenticated(gql):
    for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Basic abc"}):
        body = await gql.raw("{ settlementModels { name } }", role=None, headers=headers)
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    body = await gql.raw(CREATE, role=None, headers={"Authorization": "Bearer nope"})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert not await SettlementModel.filter(name="HOURLY").exists()


@pytest.mark.parametrize(("role", "allowed"), [("viewer", False), ("ingest", False), ("settler", False),
                                               ("operator", True), ("admin", True)])
async def test_model_creation_needs_operator(gql, role, allowed):
    body = await gql.raw(CREATE, role=role)
    if allowed:
        assert body["data"]["createSettlementModel"]["model"] == {"name": "HOURLY"}
    else:
        assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert "OPERATOR" in body["errors"][0]["message"]
    assert await SettlementModel.filter(name="HOURLY").exists() is allowed


@pytest.mark.parametrize(("role", "allowed"), [("viewer", False), ("operator", False), ("ingest", True),
                                               ("admin", True)])
async def test_recording_needs_ingest(gql, role, allowed):
    body = await gql.raw(RECORD, {"t": [transfer("t1")]}, role=role)
    assert (body.get("errors") is None) is allowed
    if not allowed:
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await gql("""{ transfer(transferId: "t1") { transferId } }""", role="viewer"))["transfer"] == (
        {"transferId": "t1"} if allowed else None)


async def test_every_mutation_is_audited_with_its_outcome(gql):
    await gql(CREATE, role="operator")
    await gql(CREATE, role="operator")  # refused: the name exists
    await gql.raw(CREATE, role="viewer")  # forbidden before it runs: no audit of a mutation that never ran
    await gql(RECORD, {"t": [transfer("t1")]}, role="ingest")
    entries = [(e.actor, e.operation, e.target, e.outcome) for e in await AuditEntry.all().order_by("id")]
    assert entries == [
        ("oscar-operator", "createSettlementModel", "HOURLY", "OK"),
        ("oscar-operator", "createSettlementModel", "HOURLY", "REFUSED"),
        ("clearing-engine", "recordTransfers", "1 transfer(s)", "OK"),
    ]
    assert (await AuditEntry.all().order_by("id"))[1].detail == {"codes": ["DUPLICATE_NAME"]}


async def test_websocket_needs_a_key_in_connection_init(server, gql):
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer wrong"}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 4403
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer k-viewer"}}))
        ack = json.loads(await ws.recv())
        assert ack["type"] == "connection_ack" and ack["payload"] == {"actor": "vera-viewer"}


async def test_health_endpoints_and_metrics(server, gql):
    assert (await gql.http.get("/healthz")).json() == {"status": "ok"}
    ready = await gql.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "reachable"
    metrics = await gql.http.get("/metrics")
    assert metrics.status_code == 200 and "settlegraph" in metrics.text


async def test_the_event_loop_lag_is_measured(server, gql):
    """A tick every 100 ms; its lateness at /metrics. A stretch of blocking work in the server shows in it."""
    import asyncio
    import os
    import re
    import time

    await asyncio.sleep(0.3)  # a tick or two first
    time.sleep(0.25)  # noqa: ASYNC251 - holds the server's loop on purpose: this test runs on it
    await asyncio.sleep(0.2)
    text = (await gql.http.get("/metrics")).text
    latest = float(re.search(r"^settlegraph_event_loop_lag_seconds (\S+)$", text, re.M).group(1))
    largest = float(re.search(r"^settlegraph_event_loop_lag_max_seconds (\S+)$", text, re.M).group(1))
    assert latest >= 0 and largest >= 0.15, (latest, largest)
    assert re.search(rf'^settlegraph_process_info\{{pid="{os.getpid()}"\}} 1\.0$', text, re.M)  # this process


async def test_internal_errors_are_masked(gql, server):
    body = await gql.raw("""{ batches(after: "not-a-cursor") { totalCount } }""")
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert "Traceback" not in json.dumps(body)


async def test_graphiql_is_served_to_browsers(gql):
    page = await gql.http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
