"""matrixUpdated over graphql-transport-ws through the real server (SPEC §6, §8)."""
from __future__ import annotations

import asyncio
import time

from tests.support.client import Subscriber
from tests.support.matrices import ADD, CREATE_STATIC, REMOVE, REQUEST, SETTLE, create_matrix, create_model
from tests.support.transfers import record, transfer

LIVE = """subscription($id: ID!) { matrixUpdated(id: $id) {
  id status batchCount checksum byCurrency { currency batchCount debit credit } } }"""
IN_WINDOW = "2026-03-02T14:05:10+00:00"


async def test_pushes_live_totals_when_content_changes_coalesced(gql, server):
    await create_model(gql, "RTGS", 60)
    await record(gql, transfer("t0", committed_at=IN_WINDOW, settlementModel="RTGS"))
    matrix = await create_matrix(gql)
    async with Subscriber(server.ws_url) as sub:
        await sub.subscribe(LIVE, {"id": matrix["id"]})
        # Not its content: another model, and the right model outside the period.
        await record(gql, transfer("x1", committed_at=IN_WINDOW))
        await record(gql, transfer("x2", committed_at="2026-03-02T15:05:00+00:00", settlementModel="RTGS"))
        assert await sub.quiet(0.6)
        # A burst of 40 calls of one transfer each into its batches: a few pushes, the last with every transfer.
        began = time.monotonic()
        for i in range(40):
            await record(gql, transfer(f"t{i + 1}", amount="1.00", committed_at=IN_WINDOW, settlementModel="RTGS"))
        elapsed = time.monotonic() - began
        pushes = []
        while True:
            try:
                pushes.append((await sub.next(2.0))["matrixUpdated"])
            except TimeoutError:
                break
    assert pushes, "no push"
    assert len(pushes) <= elapsed / 0.25 + 2, (len(pushes), elapsed)
    assert pushes[-1]["byCurrency"] == [{"currency": "USD", "batchCount": 1, "debit": "50.00", "credit": "50.00"}]
    assert len({p["checksum"] for p in pushes}) == len(pushes)  # never the same state twice


async def test_a_settled_matrix_pushes_its_final_state_then_completes(gql, server):
    await create_model(gql, "RTGS", 60)
    await record(gql, transfer("t1", committed_at=IN_WINDOW, settlementModel="RTGS"))
    matrix = await create_matrix(gql)
    async with Subscriber(server.ws_url) as sub:
        op_id = await sub.subscribe(LIVE, {"id": matrix["id"]})
        requested = (await gql(REQUEST, {"id": matrix["id"]}, role="operator"))["requestSettlement"]
        assert requested["userErrors"] == []
        first = (await sub.next())["matrixUpdated"]
        assert first["status"] == "AWAITING_SETTLEMENT"
        await asyncio.sleep(0.3)  # past the coalescing interval: the settlement is a push of its own
        settled = (await gql(SETTLE, {"id": matrix["id"]}, role="settler"))["settleMatrix"]
        assert settled["userErrors"] == []
        final = (await sub.next())["matrixUpdated"]
        assert final["status"] == "SETTLED"
        assert await sub.message() == {"id": op_id, "type": "complete"}
        # Subscribing to a SETTLED matrix: its final state once, then complete.
        op_id = await sub.subscribe(LIVE, {"id": matrix["id"]})
        assert (await sub.next())["matrixUpdated"] == final
        assert await sub.message() == {"id": op_id, "type": "complete"}


async def test_an_unknown_matrix_is_not_found(gql, server):
    async with Subscriber(server.ws_url) as sub:
        op_id = await sub.subscribe(LIVE, {"id": "424242"})
        message = await sub.message()
        assert message["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert await sub.message() == {"id": op_id, "type": "complete"}


async def test_adding_and_removing_static_batches_pushes(gql, server):
    first = await record(gql, transfer("s1", committed_at=IN_WINDOW))
    second = await record(gql, transfer("s2", currency="EUR", committed_at=IN_WINDOW))
    one, two = first["results"][0]["batch"]["id"], second["results"][0]["batch"]["id"]
    created = (await gql(CREATE_STATIC, {"b": [one]}, role="operator"))["createStaticMatrix"]["matrix"]
    async with Subscriber(server.ws_url) as sub:
        await sub.subscribe(LIVE, {"id": created["id"]})
        added = (await gql(ADD, {"id": created["id"], "b": [two]}, role="operator"))["addMatrixBatches"]
        assert added["userErrors"] == []
        pushed = (await sub.next())["matrixUpdated"]
        assert pushed["batchCount"] == 2 and {c["currency"] for c in pushed["byCurrency"]} == {"USD", "EUR"}
        await asyncio.sleep(0.3)  # past the coalescing interval
        removed = (await gql(REMOVE, {"id": created["id"], "b": [one]}, role="operator"))["removeMatrixBatches"]
        assert removed["userErrors"] == []
        pushed = (await sub.next())["matrixUpdated"]
        assert pushed["batchCount"] == 1 and [c["currency"] for c in pushed["byCurrency"]] == ["EUR"]
