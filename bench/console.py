"""Console benchmark (issue 13): how long the operator console's first page takes to become interactive in
Chromium against a database holding a day of one-second batches (86,400), on PostgreSQL.

Creates a fresh database, starts `settlegraph serve` as a subprocess, loads the day with bench/matrix.py's
set-based SQL (imported, ~10% OPEN, 2% IN_DISPUTE, the rest CLOSED, 10 participants each), then opens /console
signed in as an OPERATOR (the key put in sessionStorage before the page loads, as a sign-in leaves it) in a
fresh browser context each run (cold cache: every asset fetched again) and times navigation start to the batch
board's first page on screen with its links, selection and actions usable (document.body.dataset.boardReady),
and to its counts per status shown as well (countsReady; they travel in a second request sent at the same
time). The board asks for one page of 25 batches and five counts, never for the day.

    .venv/bin/python bench/console.py                # 86,400 batches, 5 runs
    .venv/bin/python bench/console.py --runs 10 --batches 86400

The figures depend on the machine; the server, PostgreSQL and Chromium share its cores.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import create_database, drop_database, dsn, free_port, start_server, stop_server, wait_ready  # noqa: E402
from matrix import ADMIN_KEY, START, create_model, generate, load  # noqa: E402

from tests.support.browser import chromium  # noqa: E402

OPERATOR_KEY = "bench-operator"
API_KEYS = f"{ADMIN_KEY}:ADMIN:bench-admin,{OPERATOR_KEY}:OPERATOR:bench-operator"
READY = "document.body.dataset.boardReady === 'true'"  # the rows and their actions are on screen
COUNTED = "document.body.dataset.countsReady === 'true'"  # the counts per status too (a second request)


async def first_page(browser, base_url: str, breakdown: bool = False) -> tuple[float, float]:
    """(wall seconds from goto to the board's rows usable, the page's own navigation-start-to-ready milliseconds)."""
    async with browser.tab(base_url) as tab:
        await tab.page.add_init_script(f"sessionStorage.setItem('settlegraph.credential', '{OPERATOR_KEY}')")
        began = time.perf_counter()
        await tab.open("/console")
        await tab.page.wait_for_function(READY, timeout=30_000)
        wall = time.perf_counter() - began
        in_page = await tab.page.evaluate("performance.now()")
        await tab.page.wait_for_function(COUNTED, timeout=30_000)
        counted = time.perf_counter() - began
        if breakdown:  # where the time went: each request's start and end, from navigation start
            entries = await tab.page.evaluate(
                "performance.getEntries().filter(e => e.entryType !== 'mark').map(e => [e.entryType,"
                " e.name.split('/').pop().slice(0, 40), e.startTime, e.responseEnd || e.startTime + e.duration])")
            for kind, name, start, end in entries:
                print(f"    {kind:10} {name:40} {start:7.1f} -> {end:7.1f} ms")
        rows = await tab.page.locator("[data-testid=batches] tbody tr").count()
        counts = await tab.page.locator("[data-testid=counts]").inner_text()
        tab.assert_clean()
    if rows == 0:
        raise SystemExit("the board showed no batch")
    print(f"  board: {rows} rows; {' '.join(counts.split())}; counts shown at {counted * 1000:.1f} ms")
    return wall, in_page


async def main(args: argparse.Namespace) -> int:
    database_url, db_name = await create_database(args.postgres_url, prefix="settlegraph_bench_console")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = start_server(database_url, port, API_KEYS, Path(args.server_log))
    print(f"bench/console.py: database {db_name}, server pid {server.pid} on :{port}, {load()}")
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=600) as http:
            await wait_ready(base_url, server)
            model_id = await create_model(http, "SECONDLY")
            conn = await asyncpg.connect(dsn(database_url))
            try:
                took = await generate(conn, model_id, "SECONDLY", START, args.batches, statuses=True)
                total = await conn.fetchval("SELECT count(*) FROM batch")
            finally:
                await conn.close()
            print(f"loaded {total} batches in {took:.1f} s")
        async with chromium() as browser:
            runs = []
            for run in range(args.runs):
                wall, in_page = await first_page(browser, base_url, args.breakdown)
                runs.append((wall, in_page))
                print(f"run {run + 1}: first page interactive {wall * 1000:7.1f} ms "
                      f"(in-page, navigation start to ready: {in_page:7.1f} ms)")
        walls = [w for w, _ in runs]
        print(f"\nfirst page interactive over {len(runs)} cold loads, {total} batches: median "
              f"{statistics.median(walls) * 1000:.1f} ms, max {max(walls) * 1000:.1f} ms ({load()})")
        return 0 if max(walls) < 1.0 else 1
    finally:
        stop_server(server)
        await drop_database(args.postgres_url, db_name)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=os.environ.get("SETTLEGRAPH_BENCH_POSTGRES_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--batches", type=int, default=86_400)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--breakdown", action="store_true", help="print each request's timing in the page")
    parser.add_argument("--server-log", default="/tmp/settlegraph-bench-console.log")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
