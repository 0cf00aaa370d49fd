"""Events cross server processes through PostgreSQL LISTEN/NOTIFY (SPEC §8): real `settlegraph serve`
processes on one fresh PostgreSQL database, real WebSocket subscribers."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.support.client import Subscriber
from tests.support.processes import Process, serve, stop
from tests.support.server import POSTGRES_URL, drop_postgres_database, fresh_postgres_database
from tests.support.subscriptions import CLOSE, DISPUTE, STATUS
from tests.support.transfers import RECORD, transfer

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="SETTLEGRAPH_TEST_POSTGRES_URL is not set")


async def listeners(database_url: str) -> int:
    """How many event-bus LISTEN connections are open on the database."""
    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'settlegraph-events'"))
    finally:
        await conn.close()


@pytest.fixture
async def database() -> AsyncIterator[str]:
    assert POSTGRES_URL
    url, name = await fresh_postgres_database(POSTGRES_URL)
    try:
        yield url
    finally:
        await drop_postgres_database(POSTGRES_URL, name)


@pytest.fixture
async def two_processes(database: str) -> AsyncIterator[tuple[Process, Process]]:
    first = await serve(database)  # applies the migrations; the second then finds none pending
    try:
        second = await serve(database)
        try:
            yield first, second
        finally:
            await stop(second)
    finally:
        await stop(first)


async def test_a_batch_closed_through_one_process_reaches_subscribers_of_both(two_processes):
    a, b = two_processes
    await a.gql(RECORD, {"t": [transfer("t1"), transfer("t2", currency="EUR")]}, role="ingest")
    async with Subscriber(a.ws_url) as on_a, Subscriber(b.ws_url) as on_b:
        await on_a.subscribe(STATUS)
        await on_b.subscribe(STATUS)
        await a.gql(CLOSE, {"id": "t1"}, role="operator")
        got_a = (await on_a.next())["batchStatusChanged"]
        got_b = (await on_b.next())["batchStatusChanged"]
        assert got_a == got_b
        assert (got_b["from"], got_b["to"], got_b["batch"]["status"], got_b["actor"]) == (
            "OPEN", "CLOSED", "CLOSED", "oscar-operator")
        # and the other way round, with a filter applied in the receiving process
        async with Subscriber(a.ws_url) as filtered_on_a:
            await filtered_on_a.subscribe(STATUS, {"model": "DEFAULT", "ids": [got_b["batch"]["id"]]})
            await b.gql(DISPUTE, {"id": "t2"}, role="operator")
            assert (await on_a.next())["batchStatusChanged"]["to"] == "IN_DISPUTE"
            assert await filtered_on_a.quiet(0.5)
            await b.gql(DISPUTE, {"id": "t1"}, role="operator")
            assert (await filtered_on_a.next())["batchStatusChanged"]["batch"]["id"] == got_b["batch"]["id"]


async def test_the_listen_connection_is_re_established(two_processes, database):
    a, b = two_processes
    await a.gql(RECORD, {"t": [transfer("t1")]}, role="ingest")
    assert await listeners(database) == 2
    admin = await asyncpg.connect(database.replace("postgres://", "postgresql://", 1))
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'settlegraph-events'")
    finally:
        await admin.close()
    assert killed == 2
    for _ in range(100):
        if await listeners(database) == 2:
            break
        await asyncio.sleep(0.1)
    assert await listeners(database) == 2
    async with Subscriber(b.ws_url) as on_b:
        await on_b.subscribe(STATUS)
        await a.gql(CLOSE, {"id": "t1"}, role="operator")
        assert (await on_b.next())["batchStatusChanged"]["to"] == "CLOSED"


async def test_serve_with_two_workers_fans_out_to_every_worker(database):
    served = await serve(database, workers=2)
    try:
        for _ in range(100):  # both workers' buses are listening
            if await listeners(database) == 2:
                break
            await asyncio.sleep(0.1)
        assert await listeners(database) == 2
        await served.gql(RECORD, {"t": [transfer("t1")]}, role="ingest")
        # Connections are spread over the workers by the kernel; with eight, both workers hold some
        # (all on one worker has a chance of 1 in 128), and every one of them must get the event.
        subscribers = [Subscriber(served.ws_url) for _ in range(8)]
        for sub in subscribers:
            await sub.__aenter__()
        try:
            for sub in subscribers:
                await sub.subscribe(STATUS)
            await served.gql(CLOSE, {"id": "t1"}, role="operator")
            for sub in subscribers:
                assert (await sub.next())["batchStatusChanged"]["to"] == "CLOSED"
        finally:
            for sub in subscribers:
                await sub.__aexit__(None, None, None)
    finally:
        await stop(served)
