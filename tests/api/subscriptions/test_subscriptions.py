"""batchStatusChanged over graphql-transport-ws through the real server (SPEC §8)."""
from __future__ import annotations

import asyncio
import json
import socket

import pytest
import websockets

from graphql_schema.schema import schema
from graphql_schema.subscriptions import SLOW_CONSUMER_CLOSE_CODE
from tests.support.client import Subscriber
from tests.support.subscriptions import CLOSE, DISPUTE, RESOLVE, STATUS
from tests.support.transfers import record, transfer


async def test_a_closed_batch_reaches_a_subscriber(gql, server):
    recorded = await record(gql, transfer("t1"))
    batch_id = recorded["results"][0]["batch"]["id"]
    async with Subscriber(server.ws_url) as sub:
        await sub.subscribe(STATUS)
        closed = await gql(CLOSE, {"id": "t1", "reason": "end of window"}, role="operator")
        assert closed["closeBatch"]["batch"]["status"] == "CLOSED"
        event = (await sub.next())["batchStatusChanged"]
    assert event["batch"] == {"id": batch_id, "name": recorded["results"][0]["batch"]["name"], "status": "CLOSED",
                              "transferCount": 1, "model": {"name": "DEFAULT"}}
    assert (event["from"], event["to"], event["actor"], event["reason"]) == (
        "OPEN", "CLOSED", "oscar-operator", "end of window")
    assert event["at"].endswith("+00:00")


async def test_every_event_is_resolved_afresh(gql, server):
    """No loader cache is kept across events of one connection: each shows the batch as it is then."""
    await record(gql, transfer("t1"))
    async with Subscriber(server.ws_url) as sub:
        await sub.subscribe(STATUS)
        await gql(DISPUTE, {"id": "t1"}, role="operator")
        first = (await sub.next())["batchStatusChanged"]
        await gql(RESOLVE, {"id": "t1"}, role="operator")
        second = (await sub.next())["batchStatusChanged"]
        await record(gql, transfer("t2"))  # opens the window's next batch
        third = (await sub.next())["batchStatusChanged"]
    assert (first["from"], first["to"], first["batch"]["status"]) == ("OPEN", "IN_DISPUTE", "IN_DISPUTE")
    assert (second["from"], second["batch"]["status"]) == ("IN_DISPUTE", second["to"])
    assert second["batch"]["id"] == first["batch"]["id"]
    assert (third["from"], third["to"], third["batch"]["status"], third["batch"]["transferCount"]) == (
        None, "OPEN", "OPEN", 1)
    assert third["batch"]["id"] != first["batch"]["id"]


async def test_filters_by_batch_ids_and_by_model(gql, server):
    await gql("""mutation { createSettlementModel(input: {name: "HOURLY", batchIntervalSeconds: 3600}) {
        model { name } userErrors { code } } }""", role="operator")
    default = await record(gql, transfer("d1"), transfer("d2", currency="EUR"))
    hourly = await record(gql, transfer("h1", settlementModel="HOURLY"))
    d1, d2 = (r["batch"]["id"] for r in default["results"])
    h1 = hourly["results"][0]["batch"]["id"]
    assert len({d1, d2, h1}) == 3
    async with (Subscriber(server.ws_url) as everything, Subscriber(server.ws_url) as by_ids,
                Subscriber(server.ws_url) as by_model, Subscriber(server.ws_url) as both):
        await everything.subscribe(STATUS)
        await by_ids.subscribe(STATUS, {"ids": [d2, h1]})
        await by_model.subscribe(STATUS, {"model": "HOURLY"})
        await both.subscribe(STATUS, {"model": "DEFAULT", "ids": [d2, h1]})
        for transfer_id in ("d1", "d2", "h1"):
            await gql(CLOSE, {"id": transfer_id}, role="operator")

        async def ids_of(sub: Subscriber, count: int) -> list[str]:
            got = [(await sub.next())["batchStatusChanged"]["batch"]["id"] for _ in range(count)]
            assert await sub.quiet()
            return got

        assert await ids_of(everything, 3) == [d1, d2, h1]
        assert await ids_of(by_ids, 2) == [d2, h1]
        assert await ids_of(by_model, 1) == [h1]
        assert await ids_of(both, 1) == [d2]


async def test_a_refused_change_publishes_nothing(gql, server):
    await record(gql, transfer("t1"))
    await gql(CLOSE, {"id": "t1"}, role="operator")
    async with Subscriber(server.ws_url) as sub:
        await sub.subscribe(STATUS)
        again = await gql(CLOSE, {"id": "t1"}, role="operator")
        assert again["closeBatch"]["userErrors"][0]["code"] == "INVALID_TRANSITION"
        assert await sub.quiet(0.5)


async def test_recording_into_a_closed_window_publishes_the_new_batch_only_after_commit(gql, server):
    """A refused recordTransfers call (bad input) writes nothing and publishes nothing."""
    async with Subscriber(server.ws_url) as sub:
        await sub.subscribe(STATUS)
        body = await gql.raw("""mutation { recordTransfers(transfers: []) { recorded userErrors { code } } }""",
                             role="ingest")
        assert "errors" in body or body["data"]["recordTransfers"]["recorded"] == 0
        assert await sub.quiet(0.5)


async def test_unknown_model_and_bad_ids_are_errors(gql, server):
    async with Subscriber(server.ws_url) as sub:
        for variables, code in (({"model": "NOPE"}, "UNKNOWN_MODEL"), ({"ids": ["x"]}, "VALIDATION")):
            op_id = await sub.subscribe(STATUS, variables)
            message = await sub.message()
            assert (message["id"], message["type"], message["payload"]["data"]) == (op_id, "next", None)
            assert message["payload"]["errors"][0]["extensions"]["code"] == code
            assert await sub.message() == {"id": op_id, "type": "complete"}


async def test_a_connection_without_a_valid_key_is_closed(server, gql):
    for payload in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "k-viewer"}):
        async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 4403
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        # subscribing before connection_init is refused too
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": STATUS}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 4401


async def test_a_slow_consumer_is_disconnected_with_a_reason(gql, server):
    """A subscriber that stops reading is dropped once its queue is full; the others keep receiving."""
    await record(gql, *(transfer(f"t{i}", payer=f"p{i:03d}", payee=f"q{i:03d}") for i in range(200)))
    bus = server.app.state.bus
    default_size = bus.queue_size
    bus.queue_size = 4
    # The slow client reads nothing: a small receive buffer and message queue make its TCP window close soon.
    slow_socket = socket.socket()
    slow_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow_socket.connect((server.base_url.split("//")[1].split(":")[0], int(server.base_url.rsplit(":", 1)[1])))
    heavy = """subscription { batchStatusChanged {
        batch { accounts { participantId currency debit credit net } history { from to at actor reason } } } }"""
    try:
        async with (Subscriber(server.ws_url, sock=slow_socket, max_queue=1, compression=None) as slow,
                    Subscriber(server.ws_url) as fine):
            await slow.subscribe(heavy)
            bus.queue_size = default_size
            await fine.subscribe(STATUS)
            closed_code = None
            for step in range(400):
                await gql(DISPUTE if step % 2 == 0 else RESOLVE, {"id": "t0"}, role="operator")
                await fine.next()
                if not slow.ws.protocol.state.name == "OPEN" or slow.ws.protocol.close_rcvd:
                    break
                if step % 20 == 19 and 4 not in schema.listener_queue_sizes():
                    break  # dropped: its close is on the way
            # Now read: the buffered events, then the close frame with the reason.
            with pytest.raises(websockets.ConnectionClosed) as closed:
                for _ in range(1000):
                    await slow.message(wait=10)
            closed_code = closed.value.rcvd.code if closed.value.rcvd else None
            assert closed_code == SLOW_CONSUMER_CLOSE_CODE
            assert "slow consumer" in closed.value.rcvd.reason
            # the other subscriber is unaffected
            await gql(DISPUTE if step % 2 == 1 else RESOLVE, {"id": "t0"}, role="operator")
            assert (await fine.next())["batchStatusChanged"]["batch"]["id"]
    finally:
        bus.queue_size = default_size


async def test_identical_subscriptions_share_one_execution(gql, server):
    """Same document, variables and roles: one bus subscription and one execution per event for all."""
    bus = server.app.state.bus

    async def settled(count: int) -> int:
        for _ in range(100):
            if len(bus.subscribers) == count:
                break
            await asyncio.sleep(0.05)
        return len(bus.subscribers)

    before = await settled(0)
    await record(gql, transfer("t1"))
    async with (Subscriber(server.ws_url) as a, Subscriber(server.ws_url) as b,
                Subscriber(server.ws_url, role="operator") as c):
        for sub in (a, b, c):
            await sub.subscribe(STATUS)
        assert await settled(before + 2) == before + 2  # the two viewers share; the operator's roles differ
        await gql(CLOSE, {"id": "t1"}, role="operator")
        got = [(await sub.next())["batchStatusChanged"] for sub in (a, b, c)]
        assert got[0] == got[1] == got[2] and got[0]["to"] == "CLOSED"
        await a.ws.close()  # one leaves; the other still receives
        await gql(DISPUTE, {"id": "t1"}, role="operator")
        assert (await b.next())["batchStatusChanged"]["to"] == "IN_DISPUTE"
    assert await settled(before) == before


async def test_a_subscription_over_plain_http_says_where_to_subscribe(gql):
    body = await gql.raw(STATUS, role="viewer")
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "WebSocket" in body["errors"][0]["message"]
