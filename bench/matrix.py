"""Matrix benchmark (issue 3): live matrix reads and settlement through the real server on PostgreSQL.

Creates a fresh database, starts `settlegraph serve` as a subprocess (four-eyes on), and for each size
(default 10,000, 100,000 and 1,000,000 one-second batches x 10 participants) generates the batches and
their accounts with set-based SQL (generate_series, not through the API; ~10% OPEN, 2% IN_DISPUTE, the
rest CLOSED), rolls them up (app/batches/store.rebuild_bucket_totals, what recording maintains
incrementally), creates a DYNAMIC matrix over them through the API and measures:

* read: `matrix(id) { participants settleable byStatus checksum }` in one GraphQL query over HTTP,
  median / p95 of --reads calls after a warm-up;
* baseline in the same run: a plain SQL join-and-sum over those batches' accounts (asyncpg, no server),
  median of --baseline-reads; the two answers must agree (FAIL otherwise);
* settle: a separate day of 86,400 one-second CLOSED batches: requestSettlement (one user) then
  settleMatrix (another user, four-eyes), each timed, and the ledger checked to balance.

    .venv/bin/python bench/matrix.py                         # 10k, 100k, 1M and the settle
    .venv/bin/python bench/matrix.py --sizes 100000 --reads 50
    .venv/bin/python bench/matrix.py --settle-only --settle-runs 3   # the settle phase only, three days

The figures depend on the machine; the server, PostgreSQL and this client share its cores.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import (  # noqa: E402
    RawConnection,
    create_database,
    drop_database,
    dsn,
    free_port,
    load,
    start_server,
    stop_server,
    verdict,
    wait_ready,
)

from app.batches.store import BatchStore  # noqa: E402

ADMIN_KEY, SETTLER_KEY = "bench-admin", "bench-settler"
API_KEYS = f"{ADMIN_KEY}:ADMIN:bench-admin,{SETTLER_KEY}:SETTLER:bench-settler"
PARTICIPANTS = 10
START = datetime(2026, 1, 1, tzinfo=UTC)
READ = """query($id: ID!) { matrix(id: $id) {
  participants { participantId currency debit credit net }
  settleable { participantId currency debit credit net }
  byStatus { status currency batchCount debit credit }
  checksum } }"""
CREATE_MODEL = """mutation($i: SettlementModelInput!) { createSettlementModel(input: $i) {
  model { id } userErrors { code message } } }"""
CREATE_MATRIX = """mutation($i: MatrixInput!) { createMatrix(input: $i) { matrix { id batchCount }
  userErrors { code message } } }"""
REQUEST = """mutation($id: ID!) { requestSettlement(id: $id) { matrix { status } skipped { reason }
  userErrors { code message } } }"""
SETTLE = """mutation($id: ID!) { settleMatrix(id: $id) { report { id participants { participantId net } }
  userErrors { code message } } }"""


async def gql(http: httpx.AsyncClient, query: str, variables: dict[str, Any], key: str) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables},
                               headers={"Authorization": f"Bearer {key}"})
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"HTTP {response.status_code}: {json.dumps(body)[:300]}")
    return dict(body["data"])




async def create_model(http: httpx.AsyncClient, name: str) -> int:
    data = await gql(http, CREATE_MODEL, {"i": {"name": name, "batchIntervalSeconds": 1}}, ADMIN_KEY)
    payload = data["createSettlementModel"]
    if payload["userErrors"]:
        raise SystemExit(f"createSettlementModel: {payload['userErrors']}")
    return int(payload["model"]["id"])


async def generate(conn: asyncpg.Connection, model_id: int, name: str, start: datetime, count: int,
                   statuses: bool) -> float:
    """`count` one-second batches from `start` with 10 participants each (nets sum to zero per batch)."""
    began = time.perf_counter()
    status = ("CASE WHEN i % 50 = 7 THEN 'IN_DISPUTE' WHEN i % 10 = 3 THEN 'OPEN' ELSE 'CLOSED' END"
              if statuses else "'CLOSED'")
    await conn.execute(
        "INSERT INTO batch (model_id, currency, segment, segment_key, window_start, window_end, sequence, name, "
        "status, created_at, updated_at) "
        "SELECT $1, 'USD', '[]'::jsonb, '', $2::timestamptz + i * interval '1 second', "
        "$2::timestamptz + (i + 1) * interval '1 second', 1, "
        "$3 || '.USD.' || to_char(($2::timestamptz + i * interval '1 second') AT TIME ZONE 'UTC', "
        f"'YYYY.MM.DD.HH24.MI.SS') || '.001', {status}, now(), now() FROM generate_series(0, $4 - 1) AS i",
        model_id, start, name, count,
    )
    await conn.execute(
        "INSERT INTO batch_account (batch_id, participant_id, currency, debit, credit, transfer_count) "
        "SELECT b.id, 'dfsp-' || lpad(k::text, 2, '0'), 'USD', ((b.id * 7 + k * 13) % 997 + 1) * 100, "
        f"((b.id * 7 + ((k + 1) % {PARTICIPANTS}) * 13) % 997 + 1) * 100, 2 "
        f"FROM batch b CROSS JOIN generate_series(0, {PARTICIPANTS - 1}) AS k WHERE b.model_id = $1",
        model_id,
    )
    await conn.execute("INSERT INTO participant (id, created_at) SELECT 'dfsp-' || lpad(k::text, 2, '0'), now() "
                       f"FROM generate_series(0, {PARTICIPANTS - 1}) AS k ON CONFLICT DO NOTHING")
    await BatchStore.on(RawConnection(conn)).rebuild_bucket_totals()
    await conn.execute("VACUUM ANALYZE batch")
    await conn.execute("VACUUM ANALYZE batch_account")
    await conn.execute("VACUUM ANALYZE batch_bucket_total")
    return time.perf_counter() - began


def period(start: datetime, count: int) -> tuple[datetime, datetime]:
    days = -(-count // 86_400)
    return start, start + timedelta(days=days)


async def baseline(conn: asyncpg.Connection, model_id: int, start: datetime, end: datetime
                   ) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT a.participant_id, a.currency, SUM(a.debit) AS debit, SUM(a.credit) AS credit "
        "FROM batch b JOIN batch_account a ON a.batch_id = b.id "
        "WHERE b.model_id = $1 AND b.window_start >= $2 AND b.window_start < $3 GROUP BY 1, 2 ORDER BY 1, 2",
        model_id, start, end,
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def read_size(http: httpx.AsyncClient, conn: asyncpg.Connection, count: int, start: datetime,
                    args: argparse.Namespace, failures: list[str]) -> None:
    name = f"READ_{count}"
    model_id = await create_model(http, name)
    seconds = await generate(conn, model_id, name, start, count, statuses=True)
    begin, end = period(start, count)
    data = await gql(http, CREATE_MATRIX, {"i": {"model": name, "period": {
        "unit": "DAY", "start": begin.isoformat(), "end": end.isoformat()}}}, ADMIN_KEY)
    matrix = data["createMatrix"]["matrix"]
    rollup_rows = await conn.fetchval("SELECT count(*) FROM batch_bucket_total WHERE model_id = $1", model_id)
    print(f"\n{count:,} batches x {PARTICIPANTS} participants: generated in {seconds:.1f} s; matrix {matrix['id']} "
          f"holds {matrix['batchCount']:,} batches; {rollup_rows} rollup rows")
    if matrix["batchCount"] != count:
        failures.append(f"{name}: batchCount {matrix['batchCount']} != {count}")

    for _ in range(3):  # warm-up: parse/validation caches, plans
        await gql(http, READ, {"id": matrix["id"]}, ADMIN_KEY)
    times: list[float] = []
    answer: dict[str, Any] = {}
    for _ in range(args.reads):
        t0 = time.perf_counter()
        answer = (await gql(http, READ, {"id": matrix["id"]}, ADMIN_KEY))["matrix"]
        times.append(time.perf_counter() - t0)
    print(f"  API matrix read        median {ms(statistics.median(times))}  p95 {ms(pct(times, 0.95))}  "
          f"min {ms(min(times))}  ({args.reads} reads, {load()})")

    base_times: list[float] = []
    rows: list[asyncpg.Record] = []
    for _ in range(args.baseline_reads):
        t0 = time.perf_counter()
        rows = await baseline(conn, model_id, begin, end)
        base_times.append(time.perf_counter() - t0)
    print(f"  baseline SQL join-sum  median {ms(statistics.median(base_times))}  p95 {ms(pct(base_times, 0.95))}  "
          f"min {ms(min(base_times))}  ({args.baseline_reads} runs, {load()})")
    print(f"  ratio baseline / API: {statistics.median(base_times) / statistics.median(times):.1f}x")

    expected = {(r["participant_id"], r["currency"]): (int(r["debit"]), int(r["credit"])) for r in rows}
    got = {(p["participantId"], p["currency"]): (round(float(p["debit"]) * 100), round(float(p["credit"]) * 100))
           for p in answer["participants"]}
    if got != expected:
        failures.append(f"{name}: matrix participants differ from the SQL join-and-sum")
    if sum(int(p["net"].replace(".", "")) for p in answer["participants"]) != 0:
        failures.append(f"{name}: nets do not sum to zero")


async def settle_day(http: httpx.AsyncClient, conn: asyncpg.Connection, start: datetime,
                     failures: list[str], args: argparse.Namespace, run: int = 1) -> tuple[float, float]:
    name = f"SETTLE_DAY_{run}"
    model_id = await create_model(http, name)
    seconds = await generate(conn, model_id, name, start, 86_400, statuses=False)
    data = await gql(http, CREATE_MATRIX, {"i": {"model": name, "period": {
        "unit": "DAY", "start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat()}}}, ADMIN_KEY)
    matrix_id = data["createMatrix"]["matrix"]["id"]
    print(f"\nsettle: 86,400 CLOSED batches x {PARTICIPANTS} participants, generated in {seconds:.1f} s ({load()})")
    t0 = time.perf_counter()
    requested = (await gql(http, REQUEST, {"id": matrix_id}, ADMIN_KEY))["requestSettlement"]
    t1 = time.perf_counter()
    frozen = []  # reads of the frozen matrix (its members: the batches it locked, by their owner)
    for _ in range(args.frozen_reads):
        began = time.perf_counter()
        await gql(http, READ, {"id": matrix_id}, ADMIN_KEY)
        frozen.append(time.perf_counter() - began)
    t2 = time.perf_counter()
    settled = (await gql(http, SETTLE, {"id": matrix_id}, SETTLER_KEY))["settleMatrix"]
    request_s, settle_s = t1 - t0, time.perf_counter() - t2
    if requested["userErrors"] or settled["userErrors"]:
        failures.append(f"settle: {requested['userErrors']} {settled['userErrors']}")
        return request_s, settle_s
    if frozen:
        print(f"  matrix read while AWAITING_SETTLEMENT: median {ms(statistics.median(frozen))}  min "
              f"{ms(min(frozen))}  ({len(frozen)} reads)")
    print(f"  requestSettlement      {ms(request_s)}  (close + lock 86,400 batches, freeze the set)")
    print(f"  settleMatrix           {ms(settle_s)}  (settle 86,400 batches, journal, report)  ({load()})")
    print(f"  both                   {ms(request_s + settle_s)}")
    await asyncio.sleep(0.5)  # the events are published after the answers: let the lag of that show too
    lag = re.search(r"^settlegraph_event_loop_lag_max_seconds (\S+)$", (await http.get("/metrics")).text, re.M)
    if lag:
        print(f"  largest event-loop lag of the server's last 10 s: {float(lag.group(1)) * 1000:.0f} ms")
    state = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'SETTLED') AS settled, count(*) AS batches FROM batch "
        "WHERE model_id = $1", model_id)
    unbalanced = await conn.fetchval(
        "SELECT count(*) FROM (SELECT entry_id FROM journal_line GROUP BY entry_id "
        "HAVING SUM(debit) <> SUM(credit)) AS u")
    if state["settled"] != 86_400 or unbalanced:
        failures.append(f"settle: {state['settled']} of 86,400 settled, {unbalanced} unbalanced journal entries")
    if sum(int(p["net"].replace(".", "")) for p in settled["report"]["participants"]) != 0:
        failures.append("settle: report nets do not sum to zero")
    return request_s, settle_s


async def main(args: argparse.Namespace) -> int:
    database_url, db_name = await create_database(args.postgres_url)
    if args.log_slow_ms is not None:  # statements slower than this go to PostgreSQL's log
        admin = await asyncpg.connect(dsn(database_url))
        await admin.execute(f'ALTER DATABASE "{db_name}" SET log_min_duration_statement = {int(args.log_slow_ms)}')
        await admin.close()
    port = free_port()
    server = start_server(database_url, port, API_KEYS, Path(args.server_log), SETTLEGRAPH_FOUR_EYES="true")
    failures: list[str] = []
    print(f"bench/matrix.py: database {db_name}, server pid {server.pid} on :{port}, {load()}")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
            await wait_ready(f"http://127.0.0.1:{port}", server)
            conn = await asyncpg.connect(dsn(database_url))
            try:
                start = START
                for count in [] if args.settle_only else args.sizes:
                    await read_size(http, conn, count, start, args, failures)
                    start += timedelta(days=-(-count // 86_400) + 1)
                if not args.skip_settle:
                    runs = [await settle_day(http, conn, start + timedelta(days=2 * run), failures, args, run + 1)
                            for run in range(args.settle_runs)]
                    if len(runs) > 1:
                        print(f"\nsettle over {len(runs)} days: requestSettlement median "
                              f"{ms(statistics.median(r[0] for r in runs))}, settleMatrix median "
                              f"{ms(statistics.median(r[1] for r in runs))}  ({load()})")
            finally:
                await conn.close()
    finally:
        stop_server(server)
        if args.keep:
            print(f"kept database {database_url}")
        else:
            await drop_database(args.postgres_url, db_name)
    return verdict(failures, "matrix totals equal the SQL join-and-sum; settlement settled every batch; journal "
                   "balanced", args.server_log)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=os.environ.get("SETTLEGRAPH_BENCH_POSTGRES_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")],
                        default=[10_000, 100_000, 1_000_000], help="batch counts, comma-separated")
    parser.add_argument("--reads", type=int, default=30)
    parser.add_argument("--baseline-reads", type=int, default=5)
    parser.add_argument("--skip-settle", action="store_true")
    parser.add_argument("--settle-only", action="store_true", help="only the settle phase (no live reads)")
    parser.add_argument("--settle-runs", type=int, default=1, help="settle this many separate days")
    parser.add_argument("--frozen-reads", type=int, default=5,
                        help="reads of each day's matrix between its request and its settle (a frozen matrix)")
    parser.add_argument("--log-slow-ms", type=int, help="log statements slower than this (PostgreSQL log)")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--server-log", default="/tmp/settlegraph-bench-matrix.log")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
