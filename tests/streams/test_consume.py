"""`settlegraph consume` through a real JetStream server (SPEC §13), on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import nats
import pytest
from tortoise import Tortoise

from app.core.settings import Settings
from tests.streams.conftest import (
    Processes,
    check_totals,
    consumer_state,
    count,
    event,
    publish,
    wait_until,
)
from tests.support import processes
from tests.support.client import GraphQLClient
from tests.support.nats import NatsServer
from tests.support.proxy import Proxy
from tests.support.server import free_port

DEFAULTS = Settings()
# What a killed consumer held is delivered again once its acknowledgement wait ran out: short here.
ACK_WAIT = {"SETTLEGRAPH_NATS_ACK_WAIT_SECONDS": "3"}


async def drained(nats_url: str) -> bool:
    return await consumer_state(nats_url) == (0, 0)


async def test_events_become_batches_with_their_totals(database: str, broker_server: NatsServer, procs: Processes,
                                                       gql: GraphQLClient) -> None:
    await gql("""mutation { createSettlementModel(input: {name: "RTGS", batchIntervalSeconds: 60}) {
        userErrors { code } } }""", role="operator")
    events = [event(i, mojaloop=i % 2 == 1, model="RTGS" if i % 4 == 0 else None,
                    at=f"2026-03-02T14:0{i % 3}:00+00:00") for i in range(300)]
    await publish(broker_server.url, events)
    await procs.start("consume", database, broker_server.url)

    await wait_until(lambda: _equals(count("transfer"), 300), 60, "300 transfers", procs.logs)
    await wait_until(lambda: drained(broker_server.url), 30, "every message acknowledged", procs.logs)
    assert await check_totals() == 300
    # DEFAULT (daily): one batch a currency; RTGS (a minute): EUR at 14:00, USD at 14:01 and 14:02.
    data = await gql("{ batches(first: 50) { totalCount edges { node { name transferCount "
                     "accounts { participantId debit credit net } } } } }", role="viewer")
    assert data["batches"]["totalCount"] == 5
    assert sum(e["node"]["transferCount"] for e in data["batches"]["edges"]) == 300
    usd_debits = sum(float(a["debit"]) for e in data["batches"]["edges"] if ".USD." in e["node"]["name"]
                     for a in e["node"]["accounts"])
    assert round(usd_debits, 2) == round(sum(float(e["amount"]["amount"] if isinstance(e["amount"], dict)
                                                   else e["amount"]) for i, e in enumerate(events) if i % 3), 2)
    # One audit entry per fetched batch of messages, the consumer as actor.
    entries = await gql("""{ auditLog(first: 100, filter: {operation: "consumeTransfers"}) {
        edges { node { actor outcome } } } }""", role="auditor")
    nodes = [e["node"] for e in entries["auditLog"]["edges"]]
    assert nodes and all(n == {"actor": "consumer:settlegraph", "outcome": "OK"} for n in nodes)
    assert await count("audit_entry", "WHERE operation = 'consumeTransfers'") == len(nodes)


async def test_redelivered_and_repeated_events_are_duplicates(database: str, broker_server: NatsServer,
                                                              procs: Processes) -> None:
    await publish(broker_server.url, [event(i) for i in range(50)])
    await procs.start("consume", database, broker_server.url)
    await wait_until(lambda: _equals(count("transfer"), 50), 60, "50 transfers", procs.logs)
    # The hub publishes the same events again (its own retry): DUPLICATE, acknowledged, nothing counted twice.
    await publish(broker_server.url, [event(i) for i in range(50)])
    await wait_until(lambda: drained(broker_server.url), 30, "every message acknowledged", procs.logs)
    assert await count("transfer") == 50
    assert await check_totals() == 50
    details = [d if isinstance(d, dict) else json.loads(d) for d in await audit_details()]
    assert sum(d["recorded"] for d in details) == 50 and sum(d["duplicates"] for d in details) == 50


async def audit_details() -> list[object]:
    conn = Tortoise.get_connection("default")
    rows = await conn.execute_query_dict("SELECT detail FROM audit_entry WHERE operation = 'consumeTransfers'")
    return [r["detail"] for r in rows]


async def test_poison_messages_go_to_the_dead_letter_subject_with_their_code(
        database: str, broker_server: NatsServer, procs: Processes) -> None:
    poison: list[dict[str, object] | bytes] = [
        b"{not json",
        b"\xff\xfe",
        json.dumps([1, 2]).encode(),
        {k: v for k, v in event(1, prefix="p").items() if k != "payerId"},
        event(2, prefix="p", model="NO_SUCH_MODEL"),
        event(3, prefix="p", currency="XXZ"),
        event(4, prefix="p", amount="-5.00"),
        event(5, prefix="ok"),
        event(5, prefix="ok", amount="999.99"),  # the same transfer id with other content
    ]
    await publish(broker_server.url, poison)
    await procs.start("consume", database, broker_server.url)
    await wait_until(lambda: drained(broker_server.url), 60, "every message acknowledged", procs.logs)
    assert await count("transfer") == 1

    nc = await nats.connect(broker_server.url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(DEFAULTS.nats_deadletter_subject, stream=DEFAULTS.nats_deadletter_stream)
        letters = await sub.fetch(20, timeout=5)
    finally:
        await nc.close()
    bodies = [json.loads(m.data) for m in letters]
    assert [b["code"] for b in bodies] == ["BAD_REQUEST", "BAD_REQUEST", "BAD_REQUEST", "VALIDATION", "UNKNOWN_MODEL",
                                           "UNKNOWN_CURRENCY", "AMOUNT_NOT_POSITIVE", "TRANSFER_CONFLICT"]
    assert [m.headers["Settlegraph-Code"] for m in letters] == [b["code"] for b in bodies]  # type: ignore[index]
    assert bodies[0]["message"] == "{not json" and "messageBase64" in bodies[1]
    assert json.loads(bodies[7]["message"])["amount"] == "999.99"
    assert all(b["reason"] and b["stream"] == DEFAULTS.nats_stream and b["streamSequence"] for b in bodies)
    assert "payerId" in bodies[3]["reason"]


async def test_a_killed_consumer_loses_nothing_and_counts_nothing_twice(
        database: str, broker_server: NatsServer, procs: Processes) -> None:
    total = 12_000
    await publish(broker_server.url, [event(i, at=f"2026-03-02T14:{i % 60:02d}:00+00:00") for i in range(total)])
    first = await procs.start("consume", database, broker_server.url, "--batch", "200", **ACK_WAIT)
    await wait_until(lambda: _at_least(count("transfer"), 1_000), 60, "the first transfers", procs.logs)
    first.kill()  # kill -9 in the middle of the stream: fetched, maybe committed, not acknowledged
    await first.wait()
    assert await count("transfer") < total, "the consumer finished before it was killed: nothing was tested"
    # Two processes share the durable consumer from here on.
    await procs.start("consume", database, broker_server.url, "--batch", "200", **ACK_WAIT)
    await procs.start("consume", database, broker_server.url, "--batch", "200", **ACK_WAIT)
    await wait_until(lambda: _equals(count("transfer"), total), 120, f"{total} transfers", procs.logs)
    await wait_until(lambda: drained(broker_server.url), 60, "every message acknowledged", procs.logs)
    assert await check_totals() == total


async def test_a_broker_restart_loses_nothing(database: str, broker_server: NatsServer, procs: Processes) -> None:
    total = 8_000
    await publish(broker_server.url, [event(i) for i in range(total)])
    await procs.start("consume", database, broker_server.url, "--batch", "200", **ACK_WAIT)
    await wait_until(lambda: _at_least(count("transfer"), 500), 60, "the first transfers", procs.logs)
    await broker_server.kill()
    assert await count("transfer") < total, "the consumer finished before the broker went away: nothing was tested"
    await asyncio.sleep(0.5)  # the consumer is without a broker for a while (not an assertion)
    await broker_server.start()
    await publish(broker_server.url, [event(i, prefix="after") for i in range(500)])
    await wait_until(lambda: _equals(count("transfer"), total + 500), 120, "every transfer", procs.logs)
    await wait_until(lambda: drained(broker_server.url), 60, "every message acknowledged", procs.logs)
    assert await check_totals() == total + 500


async def _equals(value: object, expected: int) -> bool:
    return await value == expected  # type: ignore[misc]


async def _at_least(value: object, expected: int) -> bool:
    return await value >= expected  # type: ignore[misc]


async def test_a_database_outage_leaves_messages_unacknowledged_until_they_are_recorded(
        database: str, broker_server: NatsServer, procs: Processes) -> None:
    if not database.startswith("postgres"):
        pytest.skip("a database outage is a PostgreSQL server going away (SQLite is a file)")
    parts = urlsplit(database)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    through_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    try:
        consumer = await procs.start("consume", through_proxy, broker_server.url, **ACK_WAIT)
        await publish(broker_server.url, [event(i) for i in range(200)])
        await wait_until(lambda: _equals(count("transfer"), 200), 60, "200 transfers", procs.logs)

        await proxy.cut()  # PostgreSQL unreachable for the consumer (this test's own connections go direct)
        await publish(broker_server.url, [event(i, prefix="during") for i in range(300)])
        await wait_until(lambda: _logged(procs, "handed back for redelivery"), 60, "a failed batch", procs.logs)
        assert await count("transfer") == 200
        assert await consumer_state(broker_server.url) != (0, 0)  # not acknowledged: still the broker's
        await asyncio.sleep(2)  # a few seconds of outage (not an assertion)
        assert consumer.returncode is None

        await proxy.restore()
        await wait_until(lambda: _equals(count("transfer"), 500), 90, "500 transfers", procs.logs)
        await wait_until(lambda: drained(broker_server.url), 60, "every message acknowledged", procs.logs)
        assert await check_totals() == 500
        assert consumer.returncode is None
    finally:
        await proxy.close()


async def _logged(procs: Processes, text: str) -> bool:
    return text in procs.logs()


async def test_consume_without_a_nats_url_says_what_to_set_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SETTLEGRAPH_NATS")}
    env["SETTLEGRAPH_DATABASE_URL"] = f"sqlite://{tmp_path / 'unused.db'}"
    proc = await asyncio.create_subprocess_exec(processes.SETTLEGRAPH, "consume", env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, stderr = await proc.communicate()
    assert proc.returncode == 2
    assert b"SETTLEGRAPH_NATS_URL=" in stderr and b"SETTLEGRAPH_NATS_SUBJECT" in stderr


async def test_an_unreachable_broker_is_retried_and_the_demo_day_is_filed_once_it_is_there(
        database: str, tmp_path: Path, procs: Processes) -> None:
    absent = NatsServer(tmp_path / "late-jetstream", free_port())  # not started yet: nothing listens there
    metrics_port = free_port()
    await procs.start("consume", database, absent.url, "--metrics-port", str(metrics_port))
    await wait_until(lambda: _logged(procs, "cannot reach the NATS server"), 30, "the consumer saying so",
                     procs.logs)
    await absent.start()
    try:
        demo = await processes.start("demo", database, absent.url, "--publish", "--transfers", "40")
        assert await demo.wait() == 0
        await wait_until(lambda: _equals(count("transfer"), 40), 60, "the demo day filed", procs.logs)
        await wait_until(lambda: drained(absent.url), 30, "every message acknowledged", procs.logs)
        assert await check_totals() == 40
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        assert 'settlegraph_consumer_messages_total{outcome="RECORDED"} 40.0' in text
        assert "settlegraph_consumer_pending" in text
    finally:
        await absent.stop()


async def test_a_database_unreachable_at_start_is_waited_for(database: str, broker_server: NatsServer,
                                                             procs: Processes) -> None:
    if not database.startswith("postgres"):
        pytest.skip("an unreachable database is a PostgreSQL server (SQLite is a file)")
    parts = urlsplit(database)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)  # not started: nothing listens there yet
    through_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    consumer = await procs.start("consume", through_proxy, broker_server.url)
    try:
        await wait_until(lambda: _logged(procs, "cannot reach the database"), 30, "the consumer saying so",
                         procs.logs)
        assert consumer.returncode is None
        await proxy.start()
        await publish(broker_server.url, [event(i) for i in range(100)])
        await wait_until(lambda: _equals(count("transfer"), 100), 60, "100 transfers", procs.logs)
        assert await check_totals() == 100
    finally:
        await proxy.close()
