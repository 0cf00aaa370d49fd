"""The outbox and its relay (SPEC §13), through a real JetStream server, on SQLite and PostgreSQL: every status
change of a settled matrix, and its requested and settled events, reach the stream exactly once, in each batch's
order, also after a kill -9 of the relay."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import NotFoundError

from app.core.settings import Settings
from app.db.outbox import OutboxStore
from app.streams.relay import Relay
from tests.streams.conftest import Processes, count, wait_until
from tests.support import processes
from tests.support.client import GraphQLClient
from tests.support.matrices import CANCEL, REQUEST, SETTLE
from tests.support.nats import NatsServer
from tests.support.transfers import record, transfer

DEFAULTS = Settings()
ORDER = ["OPEN", "CLOSED", "AWAITING_SETTLEMENT", "SETTLED"]


async def settled_day(gql: GraphQLClient, batches: int) -> dict[str, Any]:
    """`batches` one-second batches recorded, selected into a matrix, requested and settled (four eyes); the
    settlement report."""
    data = await gql("""mutation { createSettlementModel(input: {name: "SEC", batchIntervalSeconds: 1}) {
        userErrors { code } } }""", role="operator")
    assert data["createSettlementModel"]["userErrors"] == []
    start = datetime(2026, 3, 2, tzinfo=UTC)
    for first in range(0, batches, 5_000):
        result = await record(gql, *[
            transfer(f"s-{i}", payer=f"dfsp-{i % 3}", payee=f"dfsp-{(i + 1) % 3}", amount=f"{i % 50 + 1}.00",
                     committed_at=(start + timedelta(seconds=i)).isoformat(), settlementModel="SEC")
            for i in range(first, min(first + 5_000, batches))])
        assert result["rejected"] == 0
    created = await gql("""mutation { createMatrix(input: {model: "SEC", period: {unit: DAY,
        start: "2026-03-02T00:00:00Z", end: "2026-03-03T00:00:00Z"}}) { matrix { id } userErrors { code } } }""",
                        role="operator")
    matrix_id = created["createMatrix"]["matrix"]["id"]
    requested = await gql(REQUEST, {"id": matrix_id}, role="operator")
    assert requested["requestSettlement"]["userErrors"] == []
    settled = await gql(SETTLE, {"id": matrix_id}, role="settler")
    assert settled["settleMatrix"]["userErrors"] == []
    return dict(settled["settleMatrix"]["report"])


async def stream_messages(nats_url: str) -> list[Any]:
    """Every message on the events stream, in stream order."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream(timeout=10)
        sub = await js.pull_subscribe(f"{DEFAULTS.nats_events_prefix}.>", stream=DEFAULTS.nats_events_stream,
                                      config=ConsumerConfig(ack_policy=AckPolicy.NONE))
        found: list[Any] = []
        while True:
            try:
                found += await sub.fetch(1_000, timeout=1)
            except TimeoutError:
                return found
    finally:
        await nc.close()


async def stream_count(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return int((await nc.jetstream().stream_info(DEFAULTS.nats_events_stream)).state.messages)
    except NotFoundError:
        return 0
    finally:
        await nc.close()


def check_exactly_once(messages: list[Any], batches: int, report: dict[str, Any]) -> None:
    """Each batch: OPEN, CLOSED, AWAITING_SETTLEMENT, SETTLED, once each and in that order; the matrix requested,
    then settled with the settlement report's content."""
    by_batch: dict[int, list[str]] = {}
    matrix_events = []
    for m in messages:
        body = json.loads(m.data)
        if body["event"] == "batchStatusChanged":
            assert m.subject == f"{DEFAULTS.nats_events_prefix}.batch.{body['to'].lower()}"
            by_batch.setdefault(body["batchId"], []).append(body["to"])
        else:
            matrix_events.append((m.subject, body))
    assert len(by_batch) == batches
    wrong = {b: seen for b, seen in by_batch.items() if seen != ORDER}
    assert not wrong, list(wrong.items())[:5]
    assert [s for s, _ in matrix_events] == [f"{DEFAULTS.nats_events_prefix}.matrix.requested",
                                             f"{DEFAULTS.nats_events_prefix}.matrix.settled"]
    settlement = matrix_events[1][1]["settlement"]
    assert str(settlement["id"]) == report["id"] and settlement["settledBy"] == report["settledBy"]
    assert settlement["participants"] == sorted(report["participants"],
                                                key=lambda p: (p["participantId"], p["currency"]))
    assert len({m.headers["Nats-Msg-Id"] for m in messages}) == len(messages)


async def test_the_relay_delivers_every_change_of_a_settled_matrix_once(
        database: str, broker_server: NatsServer, procs: Processes, gql: GraphQLClient) -> None:
    report = await settled_day(gql, 20)
    # Change sets, not a row per batch: created (one call), closed, locked, settled; the matrix requested, settled.
    assert await count("outbox") == 6
    await procs.start("relay", database, broker_server.url)
    await wait_until(lambda: _outbox_empty(), 30, "the outbox relayed", procs.logs)
    messages = await stream_messages(broker_server.url)
    assert len(messages) == 4 * 20 + 2
    check_exactly_once(messages, 20, report)


async def test_a_relay_killed_midway_resumes_and_delivers_exactly_once(
        database: str, broker_server: NatsServer, procs: Processes, gql: GraphQLClient) -> None:
    batches = 6_000
    report = await settled_day(gql, batches)
    total = 4 * batches + 2
    relay = await procs.start("relay", database, broker_server.url)
    await wait_until(lambda: _stream_has_some(broker_server.url), 60, "the first events", procs.logs)
    relay.kill()  # kill -9 while it publishes: rows published in part, or in full and not deleted
    await relay.wait()
    assert await stream_count(broker_server.url) < total, "the relay finished before it was killed"
    await procs.start("relay", database, broker_server.url)
    await wait_until(lambda: _outbox_empty(), 60, "the outbox relayed", procs.logs)
    messages = await stream_messages(broker_server.url)
    assert len(messages) == total
    check_exactly_once(messages, batches, report)


async def test_a_crash_between_publishing_and_deleting_publishes_nothing_twice(
        database: str, broker_server: NatsServer, gql: GraphQLClient) -> None:
    """Deterministically: a relay published every row (and half of the next one) and died before deleting any."""
    report = await settled_day(gql, 30)
    relay = Relay(Settings(database_url=database, nats_url=broker_server.url))
    try:
        js = await relay._jetstream()
        rows = await OutboxStore.on(_connection()).first(100)
        for row in rows:
            await relay._publish(js, row)
    finally:
        await relay.close()
    assert await count("outbox") == len(rows)
    second = Relay(Settings(database_url=database, nats_url=broker_server.url))
    try:
        await second.drain()
    finally:
        await second.close()
    messages = await stream_messages(broker_server.url)
    assert len(messages) == 4 * 30 + 2
    check_exactly_once(messages, 30, report)


async def test_serve_relays_the_outbox_when_nats_is_configured(
        database: str, broker_server: NatsServer, gql: GraphQLClient) -> None:
    report = await settled_day(gql, 10)
    served = await processes.serve(database, SETTLEGRAPH_NATS_URL=broker_server.url)
    try:
        await wait_until(lambda: _outbox_empty(), 30, "the outbox relayed by the server")
    finally:
        await processes.stop(served)
    messages = await stream_messages(broker_server.url)
    check_exactly_once(messages, 10, report)


def _connection() -> Any:
    from tortoise import Tortoise

    return Tortoise.get_connection("default")


async def _outbox_empty() -> bool:
    return await count("outbox") == 0


async def _stream_has_some(nats_url: str) -> bool:
    return await stream_count(nats_url) > 0



async def test_a_cancelled_settlement_is_published_with_its_batches_unlocked(
        database: str, broker_server: NatsServer, gql: GraphQLClient) -> None:
    await record(gql, transfer("c-1"), transfer("c-2", currency="EUR"))
    created = await gql("""mutation { createMatrix(input: {model: "DEFAULT", period: {unit: DAY,
        start: "2026-03-02T00:00:00Z", end: "2026-03-03T00:00:00Z"}}) { matrix { id } } }""", role="operator")
    matrix_id = created["createMatrix"]["matrix"]["id"]
    await gql(REQUEST, {"id": matrix_id}, role="operator")
    cancelled = await gql(CANCEL, {"id": matrix_id}, role="settler")
    assert cancelled["cancelSettlement"]["userErrors"] == []
    relay = Relay(Settings(database_url=database, nats_url=broker_server.url))
    try:
        await relay.drain()
    finally:
        await relay.close()
    bodies = [(m.subject.rsplit(".", 1)[1], json.loads(m.data)) for m in await stream_messages(broker_server.url)]
    assert [s for s, _ in bodies] == ["open", "open", "closed", "closed", "awaiting_settlement",
                                      "awaiting_settlement", "requested", "closed", "closed", "cancelled"]
    assert bodies[-1][1] == {"event": "matrixCancelled", "matrixId": int(matrix_id), "at": bodies[-1][1]["at"],
                             "actor": "sam-settler"}
    assert {b["reason"] for s, b in bodies[7:9]} == {f"settlement of matrix {matrix_id} cancelled"}
