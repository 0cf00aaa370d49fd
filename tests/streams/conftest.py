"""Event-stream tests (SPEC §13): a JetStream server of the test's own, the `server` fixture's database (SQLite
and PostgreSQL), and `settlegraph consume` / `settlegraph relay` as their own processes on it."""
from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError
from tortoise import Tortoise

from app.core.settings import Settings
from app.streams import broker
from tests.support import processes
from tests.support.client import GraphQLClient
from tests.support.nats import NatsServer
from tests.support.server import Server, free_port

DEFAULTS = Settings()
SUBJECT, STREAM = DEFAULTS.nats_subject, DEFAULTS.nats_stream


@pytest.fixture
async def broker_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    server = NatsServer(tmp_path / "jetstream", free_port())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def database(server: Server, gql: GraphQLClient) -> str:
    """The server fixture's database, emptied (gql resets it): the consumer's and the relay's."""
    return server.database_url


class Processes:
    """The settlegraph processes a test started, killed at its end whatever happens; their logs in one file."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.running: list[asyncio.subprocess.Process] = []

    async def start(self, command: str, database_url: str, nats_url: str, *args: str,
                    **env: str) -> asyncio.subprocess.Process:
        proc = await processes.start(command, database_url, nats_url, *args, log=self.log, **env)
        self.running.append(proc)
        return proc

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.fixture
async def procs(tmp_path: Path) -> AsyncIterator[Processes]:
    started = Processes(tmp_path / "processes.log")
    try:
        yield started
    finally:
        for proc in started.running:
            await processes.kill(proc)


async def wait_until(condition: Callable[[], Awaitable[bool]], within: float, what: str,
                     logs: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}\n{logs() if logs else ''}")
        await asyncio.sleep(0.05)


def event(i: int, *, prefix: str = "t", amount: str | None = None, currency: str | None = None,
          mojaloop: bool = False, model: str | None = None, at: str = "2026-03-02T14:05:00+00:00",
          **extra: Any) -> dict[str, Any]:
    """A committed-transfer event: SPEC §4 names, or Mojaloop's TransferCommittedFulfiled names."""
    payer, payee = f"dfsp-{i % 5}", f"dfsp-{(i % 5 + 1 + (i // 5) % 4) % 5}"
    amount = amount or f"{(i % 97) + 1}.{i % 100:02d}"
    currency = currency or ("USD" if i % 3 else "EUR")
    if mojaloop:
        body: dict[str, Any] = {"transferId": f"{prefix}-{i}", "payerFspId": payer, "payeeFspId": payee,
                                "amount": {"amount": amount, "currency": currency} if i % 2 else amount,
                                "completedTimestamp": at}
        if not i % 2:
            body["currencyCode"] = currency
    else:
        body = {"transferId": f"{prefix}-{i}", "payerId": payer, "payeeId": payee, "amount": amount,
                "currency": currency, "committedAt": at}
    if model:
        body["settlementModel"] = model
    body.update(extra)
    return body


async def publish(nats_url: str, events: Sequence[dict[str, Any] | bytes], subject: str = SUBJECT) -> None:
    """Publish events on the transfers stream (created if missing), every one acknowledged by the broker."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream(timeout=10)
        await broker.ensure_stream(js, STREAM, [SUBJECT])
        futures = [await js.publish_async(subject, e if isinstance(e, bytes) else json.dumps(e).encode())
                   for e in events]
        await asyncio.gather(*futures)
    finally:
        await nc.close()


async def consumer_state(nats_url: str, durable: str = DEFAULTS.nats_durable) -> tuple[int, int]:
    """(num_pending, num_ack_pending) of the durable consumer; (-1, -1) before a consumer process created it."""
    nc = await nats.connect(nats_url)
    try:
        try:
            info = await nc.jetstream().consumer_info(STREAM, durable)
        except NotFoundError:
            return -1, -1
        return int(info.num_pending or 0), int(info.num_ack_pending or 0)
    finally:
        await nc.close()


async def count(table: str, where: str = "") -> int:
    conn = Tortoise.get_connection("default")
    rows = await conn.execute_query_dict(f"SELECT COUNT(*) AS n FROM {table} {where}")
    return int(rows[0]["n"])


async def check_totals() -> int:
    """Every batch's accounts equal its transfers (debit as payer, credit as payee, counts), and its nets sum to
    zero: nothing counted twice, nothing missing. Answers the number of transfers."""
    conn = Tortoise.get_connection("default")
    transfers = await conn.execute_query_dict("SELECT batch_id, payer_id, payee_id, amount FROM transfer")
    expected: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for t in transfers:
        expected[(t["batch_id"], t["payer_id"])][0] += t["amount"]
        expected[(t["batch_id"], t["payee_id"])][1] += t["amount"]
    accounts = await conn.execute_query_dict("SELECT batch_id, participant_id, debit, credit FROM batch_account")
    found = {(a["batch_id"], a["participant_id"]): [a["debit"], a["credit"]] for a in accounts
             if a["debit"] or a["credit"]}
    assert found == dict(expected)
    nets: dict[int, int] = defaultdict(int)
    for (batch_id, _), (debit, credit) in found.items():
        nets[batch_id] += credit - debit
    assert all(net == 0 for net in nets.values())
    return len(transfers)
