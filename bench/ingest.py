"""Ingest benchmark (issue 2): recordTransfers through the real server on PostgreSQL.

Creates a fresh database, starts the server as a subprocess (`python -m app.cli serve`, what the `settlegraph`
console script runs, from this checkout), creates a 1-second and a 15-minute model through the API, then
measures:

* batched: N transfers (default 200,000) over 20 participants, 2 currencies, both models, 1,000 a
  recordTransfers call, 4 concurrent clients; transfers/s sustained, per-call latency, peak server RSS;
  in the same run the baselines: the same rows filed by plain asyncpg with the same SQL (the statements of
  app/batches/store_postgres.PostgresBatchStore over a raw asyncpg connection, no GraphQL, same concurrency), and the
  whole recording core (app/batches/recording.file_transfers over raw asyncpg: validation + the same SQL);
  and the lean path: the same rows into minimal tables of its own (schema `lean`: batch, transfer, account; one
  transaction a call: batch get-or-create, unnest insert of the transfers, per-(batch, participant) account
  upserts; no fingerprints, attributes, rollup, history, audit), the bar the API is held to (issue 14);
* storage: after VACUUM ANALYZE, bytes per transfer of settlegraph's tables against the lean tables;
* single: single-transfer recordTransfers calls from 32 concurrent clients, each on a kept-alive connection
  of its own (bench/harness.Connection, a minimal HTTP/1.1 client: ~0.1 ms of CPU a call here against ~1 ms
  for httpx, which `--http-client httpx` measures with); calls/s and p50/p95/p99;
* at the end, in SQL: every batch's account totals equal the sum of its transfers and nets sum to zero
  per batch. Prints FAIL and exits 1 otherwise.

    .venv/bin/python bench/ingest.py --workers 1
    .venv/bin/python bench/ingest.py --workers 2 --profile-dir /tmp/prof   # py-spy collapsed stacks

The figures depend on the machine; the server, PostgreSQL and this client share its cores, so each phase also
prints the CPU seconds of each (ms per transfer or call are steadier than rates on a busy machine); PostgreSQL's
are those of the backends connected to this bench's database only, and the lean path prints its own (PostgreSQL
and this client), so the API's CPU per transfer can be set against the bar's.
--profile-dir needs py-spy (`pip install py-spy`).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import (  # noqa: E402
    Connection,
    CpuMeter,
    RawConnection,
    create_database,
    drop_database,
    dsn,
    free_port,
    start_server,
    stop_server,
    verdict,
    wait_ready,
)

from app.batches import recording, transfers  # noqa: E402
from app.batches.store import MODELS_SQL  # noqa: E402
from app.batches.store_postgres import PostgresBatchStore  # noqa: E402

ADMIN_KEY, INGEST_KEY = "bench-admin", "bench-ingest"
API_KEYS = f"{ADMIN_KEY}:ADMIN:bench-admin,{INGEST_KEY}:INGEST:bench-ingest"
MODELS = (("BENCH_1S", 1), ("BENCH_15M", 900))
CURRENCIES = ("USD", "EUR")
RECORD = """
mutation Record($transfers: [TransferInput!]!) {
  recordTransfers(transfers: $transfers) {
    recorded duplicates rejected
    results { transferId outcome error { code } }
    userErrors { code }
  }
}"""
CREATE_MODEL = """
mutation Create($input: SettlementModelInput!) {
  createSettlementModel(input: $input) { model { name } userErrors { code message } }
}"""


# -- the transfers -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Row:
    """One transfer without its id and time: the same rows go through the API and the baselines."""
    payer: str
    payee: str
    amount: str
    currency: str
    model: str
    lag: float  # committedAt = the call's send time minus this many seconds


def make_rows(count: int, participants: int, spread: float, seed: int) -> list[Row]:
    rng = random.Random(seed)
    names = [f"dfsp-{i:02d}" for i in range(1, participants + 1)]
    rows = []
    for i in range(count):
        payer, payee = rng.sample(names, 2)
        rows.append(Row(payer, payee, f"{rng.randint(1, 2_000_000) / 100:.2f}", CURRENCIES[i % 2],
                        MODELS[(i // 2) % 2][0], rng.random() * spread))
    return rows


def transfer_id(prefix: str, number: int) -> str:
    """A random-looking version 4 UUID, as a hub's transfer ids are (their length and order decide much of a
    transfer's storage: an index of random keys fills its pages to about 70%), the same for the same phase prefix
    and number."""
    digest = hashlib.blake2b(f"{prefix}:{number}".encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def as_input(row: Row, transfer_id: str, sent: datetime) -> dict[str, Any]:
    return {"transferId": transfer_id, "payerId": row.payer, "payeeId": row.payee, "amount": row.amount,
            "currency": row.currency, "committedAt": (sent - timedelta(seconds=row.lag)).isoformat(),
            "settlementModel": row.model}


def as_request(row: Row, transfer_id: str, sent: datetime) -> transfers.TransferRequest:
    return transfers.TransferRequest(transfer_id=transfer_id, payer_id=row.payer, payee_id=row.payee,
                                     amount=row.amount, currency=row.currency,
                                     committed_at=sent - timedelta(seconds=row.lag), settlement_model=row.model)


# -- measuring ---------------------------------------------------------------------------------------

@dataclass
class Run:
    name: str
    items: int = 0  # transfers (or calls) completed
    calls: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

    def latency_line(self) -> str:
        return (f"p50 {self.pct(50):.1f} ms  p95 {self.pct(95):.1f} ms  p99 {self.pct(99):.1f} ms  "
                f"max {self.pct(100):.1f} ms  mean {statistics.fmean(self.latencies) * 1000:.1f} ms")


_TLS = ssl.create_default_context()  # unused over http://, but httpx builds one per client unless given


def http_client(base_url: str) -> httpx.AsyncClient:
    """One client, one keep-alive connection: each simulated caller has its own (httpcore's pool scans every
    connection on each request, so one pool shared by 32 callers costs more CPU than the server)."""
    return httpx.AsyncClient(base_url=base_url, timeout=300, verify=_TLS,
                             limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))


async def drive(base_url: str | None, calls: int, clients: int,
                one_call: Callable[[Any, int], Awaitable[None]], run: Run) -> None:
    """`clients` concurrent callers (with an HTTP client each, if base_url) pull call numbers 0..calls-1 and
    time each call."""
    counter = iter(range(calls))

    async def client() -> None:
        if base_url is None:
            await caller(None)
            return
        async with http_client(base_url) as http:
            await caller(http)

    async def caller(http: httpx.AsyncClient | None) -> None:
        for number in counter:
            started = time.perf_counter()
            try:
                await one_call(http, number)
            except Exception as exc:
                run.failures.append(f"call {number}: {type(exc).__name__}: {exc}"[:300])
                continue
            run.latencies.append(time.perf_counter() - started)
            run.calls += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    run.seconds = time.perf_counter() - started


class RssSampler:
    """Peak resident memory of the server process and its children (uvicorn workers), sampled."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_total = 0
        self.peak_single = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            total = 0
            with suppress(psutil.Error):
                for proc in [self.root, *self.root.children(recursive=True)]:
                    with suppress(psutil.Error):
                        rss = proc.memory_info().rss
                        total += rss
                        self.peak_single = max(self.peak_single, rss)
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Profiler:
    """py-spy record (collapsed stacks) of the server and its workers while a phase runs."""

    def __init__(self, directory: str | None, pid: int) -> None:
        self.directory, self.pid = directory, pid
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, phase: str) -> None:
        if not self.directory:
            return
        Path(self.directory).mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).with_name("py-spy")
        self.proc = subprocess.Popen(
            [str(spy if spy.exists() else "py-spy"), "record", "--pid", str(self.pid), "--subprocesses",
             "--format", "raw", "--rate", "200", "-o", str(Path(self.directory) / f"{phase}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
            self.proc = None


# -- the API ---------------------------------------------------------------------------------------------

async def gql(http: httpx.AsyncClient, query: str, variables: dict[str, Any], key: str,
              keep_alive: bool = True) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    if not keep_alive:
        headers["Connection"] = "close"
    response = await http.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"HTTP {response.status_code}: {json.dumps(body)[:300]}")
    return body["data"]


async def create_models(http: httpx.AsyncClient) -> None:
    for name, interval in MODELS:
        data = await gql(http, CREATE_MODEL, {"input": {"name": name, "batchIntervalSeconds": interval,
                                                        "currencies": list(CURRENCIES)}}, ADMIN_KEY)
        errors = data["createSettlementModel"]["userErrors"]
        if errors:
            raise SystemExit(f"createSettlementModel {name}: {errors}")


# -- the phases --------------------------------------------------------------------------------------

def check_payload(data: dict[str, Any], expected: int) -> None:
    payload = data["recordTransfers"]
    if payload["recorded"] != expected or payload["userErrors"] or len(payload["results"]) != expected:
        bad = [r for r in payload["results"] if r["outcome"] != "RECORDED"][:3]
        raise RuntimeError(f"recorded {payload['recorded']} of {expected}: {payload['userErrors']} {bad}")


async def batched_api(base_url: str, rows: Sequence[Row], per_call: int, clients: int,
                      prefix: str, keep_alive: bool) -> Run:
    run = Run("API recordTransfers")
    calls = (len(rows) + per_call - 1) // per_call

    async def one_call(http: httpx.AsyncClient, number: int) -> None:
        chunk = rows[number * per_call:(number + 1) * per_call]
        sent = datetime.now(UTC)
        inputs = [as_input(row, transfer_id(prefix, number * per_call + i), sent) for i, row in enumerate(chunk)]
        check_payload(await gql(http, RECORD, {"transfers": inputs}, INGEST_KEY, keep_alive), len(chunk))
        run.items += len(chunk)

    await drive(base_url, calls, clients, one_call, run)
    return run



async def batched_baseline(pool: asyncpg.Pool, rows: Sequence[Row], per_call: int, clients: int, prefix: str,
                           core: bool) -> Run:
    """The same rows through the same SQL over plain asyncpg, no HTTP/GraphQL/Tortoise.

    core=False: the filing statements only (resolve/lock the OPEN batches, insert the transfers via unnest,
    upsert the batch accounts, the participants, the hourly rollup: PostgresBatchStore.latest_batches_locked,
    create_batch, file_rows), rows validated and keyed by transfers.prepare beforehand.
    core=True: app.batches.recording.file_transfers as the server runs it (model lookup, duplicate check, ...).
    """
    run = Run("asyncpg, recording core" if core else "asyncpg, same SQL")
    calls = (len(rows) + per_call - 1) // per_call
    async with pool.acquire() as conn:
        models = transfers.model_infos(await PostgresBatchStore(RawConnection(conn)).rows(MODELS_SQL))

    async def one_call(_: None, number: int) -> None:
        chunk = rows[number * per_call:(number + 1) * per_call]
        sent = datetime.now(UTC)
        requests = [as_request(row, transfer_id(prefix, number * per_call + i), sent) for i, row in enumerate(chunk)]
        async with pool.acquire() as conn, conn.transaction():
            raw = RawConnection(conn)
            if core:
                result = await recording.file_transfers(raw, requests, "bench")
                recorded = result.count("RECORDED")
            else:
                recorded = await file_with_store_sql(PostgresBatchStore(raw), requests, models)
        if recorded != len(chunk):
            raise RuntimeError(f"recorded {recorded} of {len(chunk)}")
        run.items += len(chunk)

    await drive(None, calls, clients, one_call, run)
    return run


async def file_with_store_sql(store: PostgresBatchStore, requests: Sequence[transfers.TransferRequest],
                              models: dict[str, transfers.ModelInfo]) -> int:
    now = datetime.now(UTC)
    prepared = [transfers.prepare(r, i, models, now) for i, r in enumerate(requests)]
    result = recording.RecordingResult([])
    targets = await recording._open_batches(store, {p.key: p.new_batch() for p in prepared}, "bench", now, result)
    for p in prepared:
        p.row.batch_id = targets[p.key]
    rows = [p.row for p in prepared]
    return len(await store.file_rows(rows, now, result.created_batch_ids))


# -- the lean path: its own minimal tables (issue 14) -----------------------------------------------------

LEAN_SCHEMA = """
CREATE SCHEMA lean;
CREATE TABLE lean.batch (
    id bigserial PRIMARY KEY, model text NOT NULL, currency char(3) NOT NULL, window_start timestamptz NOT NULL,
    UNIQUE (model, currency, window_start));
CREATE TABLE lean.transfer (
    transfer_id text PRIMARY KEY, batch_id bigint NOT NULL REFERENCES lean.batch, payer text NOT NULL,
    payee text NOT NULL, amount bigint NOT NULL, committed_at timestamptz NOT NULL);
CREATE TABLE lean.account (
    batch_id bigint NOT NULL REFERENCES lean.batch, participant_id text NOT NULL, debit bigint NOT NULL,
    credit bigint NOT NULL, transfer_count int NOT NULL, PRIMARY KEY (batch_id, participant_id));
"""
# One transaction a call: get-or-create the batches, insert the transfers with unnest (a repeated id is
# skipped), upsert the (batch, participant) accounts from the transfers actually inserted.
# Two statements: a batch another call created meanwhile is visible only to a statement started after it committed.
LEAN_NEW_BATCHES = """
INSERT INTO lean.batch (model, currency, window_start)
SELECT DISTINCT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) ORDER BY 1, 2, 3 ON CONFLICT DO NOTHING"""
LEAN_BATCHES = """
SELECT b.id, b.model, b.currency, b.window_start FROM lean.batch b
JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])) AS k(model, currency, ws)
  ON b.model = k.model AND b.currency = k.currency AND b.window_start = k.ws"""
LEAN_FILE = """
WITH filed AS (
    INSERT INTO lean.transfer (transfer_id, batch_id, payer, payee, amount, committed_at)
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[])
    ON CONFLICT (transfer_id) DO NOTHING RETURNING batch_id, payer, payee, amount),
legs AS (SELECT batch_id, payer AS participant_id, amount AS debit, 0::bigint AS credit FROM filed
         UNION ALL SELECT batch_id, payee, 0::bigint, amount FROM filed)
INSERT INTO lean.account (batch_id, participant_id, debit, credit, transfer_count)
SELECT batch_id, participant_id, sum(debit), sum(credit), count(*) FROM legs GROUP BY 1, 2 ORDER BY 1, 2
ON CONFLICT (batch_id, participant_id) DO UPDATE SET debit = account.debit + excluded.debit,
    credit = account.credit + excluded.credit, transfer_count = account.transfer_count + excluded.transfer_count"""
MODEL_SECONDS = dict(MODELS)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_of(committed_at: datetime, seconds: int) -> datetime:
    elapsed = (committed_at - EPOCH) // timedelta(seconds=1)
    return EPOCH + timedelta(seconds=elapsed - elapsed % seconds)


async def lean_path(pool: asyncpg.Pool, rows: Sequence[Row], per_call: int, clients: int, prefix: str) -> Run:
    """The same rows filed into the lean tables over plain asyncpg: no fingerprints, attributes, rollup, history,
    audit, participants or idempotency keys; what the hub's filing needs at the least."""
    run = Run("lean path (asyncpg)")
    calls = (len(rows) + per_call - 1) // per_call

    async def one_call(_: None, number: int) -> None:
        chunk = rows[number * per_call:(number + 1) * per_call]
        sent = datetime.now(UTC)
        committed = [sent - timedelta(seconds=row.lag) for row in chunk]
        windows = [window_of(at, MODEL_SECONDS[row.model]) for row, at in zip(chunk, committed, strict=True)]
        async with pool.acquire() as conn, conn.transaction():
            keys = ([r.model for r in chunk], [r.currency for r in chunk], windows)
            await conn.execute(LEAN_NEW_BATCHES, *keys)
            found = await conn.fetch(LEAN_BATCHES, *keys)
            batch_of = {(b["model"], b["currency"], b["window_start"]): b["id"] for b in found}
            await conn.execute(
                LEAN_FILE, [transfer_id(prefix, number * per_call + i) for i in range(len(chunk))],
                [batch_of[(r.model, r.currency, w)] for r, w in zip(chunk, windows, strict=True)],
                [r.payer for r in chunk], [r.payee for r in chunk],
                [int(r.amount.replace(".", "")) for r in chunk], committed)  # two decimals: minor units
        run.items += len(chunk)

    await drive(None, calls, clients, one_call, run)
    return run


async def bytes_per_transfer(pool: asyncpg.Pool) -> tuple[float, float, dict[str, int]]:
    """After VACUUM ANALYZE: (settlegraph's tables, the lean tables) in bytes per stored transfer, and the size
    of each of settlegraph's tables (heap, indexes and TOAST)."""
    async with pool.acquire() as conn:
        await conn.execute("VACUUM ANALYZE")
        sizes = {r["name"]: r["size"] for r in await conn.fetch(
            "SELECT n.nspname || '.' || c.relname AS name, pg_total_relation_size(c.oid) AS size FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
            "AND n.nspname IN ('public', 'lean') ORDER BY size DESC")}
        stored = await conn.fetchval("SELECT count(*) FROM transfer")
        lean = await conn.fetchval("SELECT count(*) FROM lean.transfer")
    ours = sum(size for name, size in sizes.items() if name.startswith("public."))
    theirs = sum(size for name, size in sizes.items() if name.startswith("lean."))
    return ours / max(stored, 1), theirs / max(lean, 1), {n: s for n, s in sizes.items() if n.startswith("public.")}


async def connect_one_by_one(base_url: str, count: int, kind: str) -> list[Any]:
    """Kept-alive connections opened one after the other, so that they spread over uvicorn workers
    (opened at once, all 32 landed on one worker: the first to wake accepts the whole backlog)."""
    clients: list[Any] = []
    for _ in range(count):
        if kind == "raw":
            connection = Connection(base_url)
            await connection.__aenter__()
            clients.append(connection)
        else:
            http = http_client(base_url)
            await http.get("/healthz")
            clients.append(http)
        await asyncio.sleep(0.005)
    return clients


async def close_all(clients: Sequence[Any]) -> None:
    for client in clients:
        if isinstance(client, Connection):
            await client.__aexit__()
        else:
            await client.aclose()


async def gql_any(http: Any, query: str, variables: dict[str, Any], key: str) -> dict[str, Any]:
    if not isinstance(http, Connection):
        return await gql(http, query, variables, key)
    body = json.loads(await http.post(json.dumps({"query": query, "variables": variables}).encode(), key))
    if body.get("errors"):
        raise RuntimeError(json.dumps(body)[:300])
    return dict(body["data"])


async def single_api(clients: Sequence[Any], rows: Sequence[Row], seconds: float,
                     prefix: str) -> Run:
    run = Run("API single")
    numbers = iter(range(10**9))
    deadline = time.perf_counter() + seconds

    async def caller(http: Any) -> None:
        for number in numbers:
            if time.perf_counter() >= deadline:
                return
            row = rows[number % len(rows)]
            started = time.perf_counter()
            try:
                transfer = as_input(row, transfer_id(prefix, number), datetime.now(UTC))
                check_payload(await gql_any(http, RECORD, {"transfers": [transfer]}, INGEST_KEY), 1)
            except Exception as exc:
                run.failures.append(f"call {number}: {type(exc).__name__}: {exc}"[:300])
                continue
            run.latencies.append(time.perf_counter() - started)
            run.calls += 1
            run.items += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller(http) for http in clients))
    run.seconds = time.perf_counter() - started
    return run


# -- the final check ---------------------------------------------------------------------------------

VERIFY = {
    "account rows differing from the sum of their transfers": """
        WITH legs AS (
            SELECT batch_id, payer_id AS participant_id, amount AS debit, 0::bigint AS credit FROM transfer
            UNION ALL
            SELECT batch_id, payee_id, 0::bigint, amount FROM transfer),
        sums AS (SELECT batch_id, participant_id, sum(debit) AS debit, sum(credit) AS credit, count(*) AS n
                 FROM legs GROUP BY batch_id, participant_id)
        SELECT count(*) FROM sums FULL JOIN batch_account a USING (batch_id, participant_id)
        WHERE a.id IS NULL OR sums.batch_id IS NULL OR sums.debit <> a.debit OR sums.credit <> a.credit
           OR sums.n <> a.transfer_count""",
    "batches whose nets do not sum to zero": """
        SELECT count(*) FROM (SELECT batch_id FROM batch_account GROUP BY batch_id
                              HAVING sum(credit - debit) <> 0 OR sum(transfer_count) % 2 <> 0) AS b""",
    "transfers outside their batch's key (model, currency, window)": """
        SELECT count(*) FROM transfer t JOIN batch b ON b.id = t.batch_id
        WHERE t.model_id <> b.model_id OR t.currency <> b.currency
           OR t.committed_at < b.window_start OR t.committed_at >= b.window_end""",
    "accounts in another currency than their batch": """
        SELECT count(*) FROM batch_account a JOIN batch b ON b.id = a.batch_id WHERE a.currency <> b.currency""",
    "keys with more than one OPEN batch": """
        SELECT count(*) FROM (SELECT 1 FROM batch WHERE status = 'OPEN'
                              GROUP BY model_id, currency, segment_key, window_start HAVING count(*) > 1) AS k""",
}


async def verify(pool: asyncpg.Pool, expected_transfers: int) -> list[str]:
    failures = []
    async with pool.acquire() as conn:
        for what, sql in VERIFY.items():
            bad = await conn.fetchval(sql)
            if bad:
                failures.append(f"{bad} {what}")
        stored = await conn.fetchval("SELECT count(*) FROM transfer")
        batches = await conn.fetchval("SELECT count(*) FROM batch")
        audits = await conn.fetchval("SELECT count(*) FROM audit_entry WHERE operation = 'recordTransfers'")
    if stored != expected_transfers:
        failures.append(f"{stored} transfers stored, {expected_transfers} expected")
    print(f"check: {stored} transfers in {batches} batches, {audits} recordTransfers audit entries")
    return failures


# -- main --------------------------------------------------------------------------------------------

def mib(value: int) -> str:
    return f"{value / 2**20:.0f} MiB"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


async def main(args: argparse.Namespace) -> int:
    database_url, name = await create_database(args.postgres_url, 'settlegraph_bench_ingest')
    port = args.port or free_port()
    log_path = Path(args.server_log)
    server = start_server(database_url, port, API_KEYS, log_path, args.workers)
    failures: list[str] = []
    print(f"bench/ingest.py: database {name}, server pid {server.pid} on :{port}, workers {args.workers}, "
          f"{os.cpu_count()} cores, {load()}")
    pool = await asyncpg.create_pool(dsn(database_url), min_size=args.clients, max_size=args.clients)
    profiler = Profiler(args.profile_dir, server.pid)
    try:
        base_url = f"http://127.0.0.1:{port}"
        async with http_client(base_url) as http:
            await wait_ready(base_url, server, args.workers)
            await create_models(http)
            async with pool.acquire() as conn:
                await conn.execute(LEAN_SCHEMA)
            rows = make_rows(args.transfers, args.participants, args.spread, args.seed)
            expected = 0

            # warm-up: every worker and connection parses, plans and caches once
            warm_rows = rows[: args.per_call * args.clients * 2]
            warm = await batched_api(base_url, warm_rows, args.per_call, args.clients, "w", args.keep_alive)
            failures += warm.failures
            expected += warm.items

            if not args.skip_batched:
                profiler.start("batched")
                with RssSampler(server.pid) as rss, CpuMeter(server.pid, name) as cpu:
                    api = await batched_api(base_url, rows, args.per_call, args.clients, "t", args.keep_alive)
                profiler.stop()
                failures += api.failures
                expected += api.items
                print(f"\nbatched: {api.items} transfers, {api.calls} calls of {args.per_call}, "
                      f"{args.clients} clients, workers {args.workers}, {load()}")
                print(f"  API recordTransfers    {api.rate:9,.0f} transfers/s  ({api.seconds:.1f} s)  "
                      f"per call: {api.latency_line()}")
                print(f"  {cpu.line(api.items, 'transfer')}")
                print(f"  server peak RSS        {mib(rss.peak_total)} (all processes), "
                      f"{mib(rss.peak_single)} (largest process)")
                for core in {"sql": [False], "core": [True], "both": [False, True], "none": []}[args.baseline]:
                    base = await batched_baseline(pool, rows, args.per_call, args.clients,
                                                  "c" if core else "b", core)
                    failures += base.failures
                    expected += base.items
                    print(f"  {base.name:22} {base.rate:9,.0f} transfers/s  ({base.seconds:.1f} s)  "
                          f"per call: {base.latency_line()}")
                    print(f"  ratio API / {base.name}: {api.rate / base.rate:.2f}  ({load()})")
                if not args.skip_lean:
                    with CpuMeter(server.pid, name) as lean_cpu:
                        lean = await lean_path(pool, rows, args.per_call, args.clients, "l")
                    failures += lean.failures
                    print(f"  {lean.name:22} {lean.rate:9,.0f} transfers/s  ({lean.seconds:.1f} s)  "
                          f"per call: {lean.latency_line()}")
                    print(f"  {lean_cpu.line(lean.items, 'transfer')}  (the server idles)")
                    print(f"  ratio API / {lean.name}: {api.rate / lean.rate:.2f}  (target >= 0.70; {load()})")

            if not args.skip_single:
                callers = await connect_one_by_one(base_url, args.single_clients, args.http_client)
                warm_single = await single_api(callers, rows, args.single_warmup, "sw")
                failures += warm_single.failures
                expected += warm_single.items
                profiler.start("single")
                with CpuMeter(server.pid, name) as cpu:
                    single = await single_api(callers, rows, args.single_seconds, "s")
                profiler.stop()
                failures += single.failures
                expected += single.items
                print(f"\nsingle: {single.calls} calls in {single.seconds:.1f} s, {args.single_clients} clients, "
                      f"workers {args.workers}, {load()}")
                print(f"  API single transfer    {single.rate:9,.0f} calls/s     {single.latency_line()}")
                print(f"  {cpu.line(single.calls, 'call')}")
                await close_all(callers)

        failures += await verify(pool, expected)
        if not args.skip_lean and not args.skip_batched:
            ours, lean_bytes, tables = await bytes_per_transfer(pool)
            print(f"\nstorage after VACUUM ANALYZE: settlegraph {ours:,.0f} bytes/transfer, lean path "
                  f"{lean_bytes:,.0f} bytes/transfer, ratio {ours / lean_bytes:.2f} (target <= 1.50)")
            print("  largest tables: " + ", ".join(f"{name.removeprefix('public.')} {mib(size)}"
                                                   for name, size in list(tables.items())[:6]))
    finally:
        profiler.stop()
        await pool.close()
        stop_server(server)
        if args.keep:
            print(f"kept database {database_url}")
        else:
            await drop_database(args.postgres_url, name)
    return verdict(failures, "every batch's totals equal the sum of its transfers; nets sum to zero per batch",
                   log_path)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=os.environ.get(
        "SETTLEGRAPH_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="server to create the bench database on (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of the server")
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument("--transfers", type=int, default=200_000, help="batched: transfers in all")
    parser.add_argument("--per-call", type=int, default=1_000, help="batched: transfers a call")
    parser.add_argument("--clients", type=int, default=4, help="batched: concurrent clients")
    parser.add_argument("--keep-alive", action="store_true",
                        help="batched: keep each client's connection (default: a new connection a call, so that "
                             "calls spread over uvicorn workers; 4 kept connections tend to land on one worker)")
    parser.add_argument("--participants", type=int, default=20)
    parser.add_argument("--spread", type=float, default=0.2,
                        help="a call's transfers are committed within this many seconds before it is sent")
    parser.add_argument("--baseline", choices=["sql", "core", "both", "none"], default="both",
                        help="plain-asyncpg baselines: the filing SQL only, the recording core, both, none")
    parser.add_argument("--single-clients", type=int, default=32)
    parser.add_argument("--single-seconds", type=float, default=15.0)
    parser.add_argument("--single-warmup", type=float, default=2.0)
    parser.add_argument("--http-client", choices=("raw", "httpx"), default="raw",
                        help="single: the callers' HTTP client, a minimal keep-alive one (default) or httpx")
    parser.add_argument("--skip-batched", action="store_true")
    parser.add_argument("--skip-single", action="store_true")
    parser.add_argument("--skip-lean", action="store_true", help="batched: without the lean path and storage figures")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database (default: dropped)")
    parser.add_argument("--profile-dir", help="py-spy record the server per phase into DIR/<phase>.txt")
    parser.add_argument("--server-log", default="/tmp/settlegraph-bench-server.log")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
