"""A transfer never lands in a batch that is not OPEN, while writers and closers race (SPEC §4)."""
from __future__ import annotations

import asyncio
import itertools
from datetime import datetime

import pytest
from tortoise import Tortoise

from tests.support.transfers import RECORD, transfer

BATCH_COUNT = """query($id: ID!) { batch(ref: {id: $id}) { status transferCount } }"""
CLOSE = """mutation($id: String!) { closeBatch(ref: {transferId: $id}) {
  batch { id name transferCount accounts { participantId debit credit } } userErrors { code } } }"""


async def test_writers_and_closers_race(gql, server):
    if server.backend != "postgres":
        pytest.skip("concurrent transactions need PostgreSQL (SQLite runs one transaction at a time)")
    counter = itertools.count()
    recorded: list[str] = []
    snapshots: dict[str, tuple[int, list]] = {}
    stop = asyncio.Event()

    calls = 0

    async def writer(w: int) -> None:
        nonlocal calls
        # At least 6 calls each, and on until the closers have closed several batches under load.
        while calls < 24 or (len(snapshots) < 3 and calls < 400):
            calls += 1
            ids = [f"w{w}-{next(counter)}" for _ in range(400)]
            batch = [transfer(i, f"p{n % 4}", f"q{n % 3}", "1.25", committed_at="2026-03-02T14:05:00Z")
                     for n, i in enumerate(ids)]
            data = await gql(RECORD, {"t": batch}, role="ingest")
            assert data["recordTransfers"]["recorded"] == len(ids)
            recorded.extend(ids)

    async def writers() -> None:
        await asyncio.gather(*(writer(w) for w in range(4)))
        stop.set()

    async def closer() -> None:
        while not stop.is_set():
            if recorded:  # the batch the writers are filling right now
                data = await gql(CLOSE, {"id": recorded[-1]}, role="operator")
                batch = data["closeBatch"]["batch"]
                if batch is not None:  # read after the close committed: the batch's final content
                    snapshots[batch["name"]] = (batch["transferCount"], batch["accounts"])
            await asyncio.sleep(0.02)

    await asyncio.gather(writers(), closer(), closer())
    assert len(snapshots) >= 3, "the race needs several closes to mean anything"

    conn = Tortoise.get_connection("default")
    rows = await conn.execute_query_dict(
        "SELECT b.name, b.status, COUNT(t.id) AS n FROM batch b LEFT JOIN transfer t ON t.batch_id = b.id "
        "GROUP BY b.name, b.status ORDER BY b.name")
    counts = {r["name"]: r["n"] for r in rows}
    for name, (count, accounts) in snapshots.items():
        assert counts[name] == count, f"{name} received transfers after it was closed"
        query = """query($n: String!) { batch(ref: {name: $n}) { accounts { participantId debit credit } } }"""
        final = (await gql(query, {"n": name}))["batch"]["accounts"]
        assert final == accounts
    assert sum(counts.values()) == len(recorded) == calls * 400
    assert sum(1 for r in rows if r["status"] == "OPEN") <= 1
    # Live totals equal the sums of the transfers, in every batch.
    mismatches = await conn.execute_query_dict(
        "SELECT a.batch_id FROM batch_account a LEFT JOIN ("
        "  SELECT batch_id, participant, SUM(debit) AS debit, SUM(credit) AS credit, COUNT(*) AS n FROM ("
        "    SELECT batch_id, payer_id AS participant, amount AS debit, 0 AS credit FROM transfer"
        "    UNION ALL SELECT batch_id, payee_id, 0, amount FROM transfer) x GROUP BY batch_id, participant) s"
        "  ON s.batch_id = a.batch_id AND s.participant = a.participant_id "
        "WHERE s.debit IS DISTINCT FROM a.debit OR s.credit IS DISTINCT FROM a.credit OR s.n <> a.transfer_count")
    assert mismatches == []


async def test_a_close_waits_for_the_recorder_in_flight(gql, server):
    """The locking protocol itself: a recorder holds its batch FOR SHARE until it commits, so a concurrent close
    waits for it, and whatever the close reports is final."""
    if server.backend != "postgres":
        pytest.skip("needs concurrent transactions (PostgreSQL)")
    from tortoise.transactions import in_transaction

    from app.batches.recording import file_transfers
    from app.batches.transfers import TransferRequest
    from tests.support.transfers import record

    await record(gql, transfer("first"))
    request = TransferRequest("in-flight", "dfsp-a", "dfsp-b", "5.00", "USD",
                              datetime.fromisoformat("2026-03-02T14:06:00+00:00"))
    async with in_transaction() as conn:
        result = await file_transfers(conn, [request], "test")
        assert result.outcomes[0].outcome == "RECORDED"
        close = asyncio.create_task(gql(CLOSE, {"id": "first"}, role="operator"))
        done, _ = await asyncio.wait({close}, timeout=0.5)
        assert not done, "the close did not wait for the recorder's transaction"
    closed = (await close)["closeBatch"]["batch"]
    assert closed["transferCount"] == 2
    late = await record(gql, transfer("late", committed_at="2026-03-02T14:07:00Z"))
    assert late["results"][0]["batch"]["name"].endswith(".002")


async def test_a_recorder_waits_for_the_close_in_flight_then_opens_the_next_sequence(gql, server):
    """The other order: a close holds its batch while a recorder arrives; the recorder must wait, see CLOSED,
    and file into the next sequence — never into the batch being closed."""
    if server.backend != "postgres":
        pytest.skip("needs concurrent transactions (PostgreSQL)")
    from tortoise.transactions import in_transaction

    from app.batches.lifecycle import apply_one
    from app.batches.status import Action
    from app.batches.store import BatchStore
    from app.core import clock
    from tests.support.transfers import record

    first = await record(gql, transfer("first"))
    batch_id = int(first["results"][0]["batch"]["id"])
    async with in_transaction() as conn:
        await apply_one(BatchStore.on(conn), batch_id, Action.CLOSE, actor="test", reason="cut-off", now=clock.now())
        late = asyncio.create_task(record(gql, transfer("late", committed_at="2026-03-02T14:07:00Z")))
        done, _ = await asyncio.wait({late}, timeout=0.5)
        assert not done, "the recorder did not wait for the close in flight"
    filed = (await late)["results"][0]
    assert filed["outcome"] == "RECORDED"
    assert filed["batch"]["name"].endswith(".002") and filed["batch"]["status"] == "OPEN"
    closed = (await gql(BATCH_COUNT, {"id": str(batch_id)}))["batch"]
    assert closed == {"status": "CLOSED", "transferCount": 1}
