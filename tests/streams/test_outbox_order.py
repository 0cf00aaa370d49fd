"""PostgreSQL: outbox rows are written under a transaction-level advisory lock as the last writes of their
transaction (app/db/outbox.py), so their id order is their commit order."""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from app.db.outbox import WRITE_LOCK
from tests.streams.conftest import count, wait_until
from tests.support.client import GraphQLClient
from tests.support.server import Server
from tests.support.transfers import record, transfer


async def test_a_writer_waits_for_the_outbox_lock_before_its_rows_take_their_ids(server: Server,
                                                                                 gql: GraphQLClient) -> None:
    if server.backend != "postgres":
        pytest.skip("SQLite has one writer at a time: id order is commit order already")
    await record(gql, transfer("o-1"))
    assert await count("outbox") == 1
    holder = await asyncpg.connect(server.database_url.replace("postgres://", "postgresql://", 1))
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")  # another writer, committing
        closing = asyncio.create_task(gql("""mutation { closeBatch(ref: {transferId: "o-1"}) {
            batch { status } userErrors { code } } }""", role="operator"))

        async def waiting() -> bool:
            return bool(await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1",
                WRITE_LOCK & 0xFFFFFFFF))

        await wait_until(waiting, 10, "the close waiting for the outbox lock")
        assert not closing.done() and await count("outbox") == 1
        await transaction.commit()
        data = await asyncio.wait_for(closing, 10)
        assert data["closeBatch"]["batch"]["status"] == "CLOSED"
        rows = await holder.fetch("SELECT id, kind, payload::json->>'to' AS to FROM outbox ORDER BY id")
        assert [(r["kind"], r["to"]) for r in rows] == [("batch", "OPEN"), ("batch", "CLOSED")]
    finally:
        await holder.close()
