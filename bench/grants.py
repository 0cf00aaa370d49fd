"""Grant benchmark (issue 5): prepareTransfer + commitTransfer pairs through the real server on PostgreSQL.

Creates a fresh database, starts `settlegraph serve` as a subprocess (SETTLEGRAPH_API_KEYS set), then, with
`--clients` concurrent callers (one keep-alive HTTP connection each), each doing prepare then commit:

* floor: `{ __typename }` calls (twice as many as pairs): what a call costs through HTTP and GraphQL with
  nothing to do — a pair is two calls, so this bounds what any pair rate can reach here;
* baseline: the same pairs without a grant (no grant lock, no spent-amount rows) — what the pair costs anyway;
  and recordTransfers with one transfer a call (the cost of one plain ingest call through the same stack);
* hot: every pair under ONE grant (daily interval, debit limit): each prepare and each commit takes that
  grant's row lock, so they queue on it;
* spread: pairs spread over `--grants` grants (1,000 by default), each with its own payer; then as many
  pairs without grants from as many other payers (baseline: as many settlement batches to open and file into).

At the end it checks, through the API (reconcileGrant), that the hot grant and a sample of the spread grants
reconcile, and that the hot grant's spent amount equals the pairs committed. Exits 1 on any failure.

    .venv/bin/python bench/grants.py                       # 16 clients, 3,000 pairs a phase
    .venv/bin/python bench/grants.py --pairs 10000 --workers 2

Targets (issue 5): >= 300 pairs/s on the hot grant, >= 1,500 pairs/s spread. The server, PostgreSQL and this
client share the machine's cores: read the figures against the baseline printed in the same run.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvloop
from harness import (
    Connection,
    CpuMeter,
    create_database,
    drop_database,
    free_port,
    start_server,
    stop_server,
    wait_ready,
)

OPERATOR_KEY, INGEST_KEY = "bench-operator", "bench-ingest"
API_KEYS = f"{OPERATOR_KEY}:OPERATOR:bench-operator,{INGEST_KEY}:INGEST:bench-ingest"

PREPARE = """mutation P($i: PrepareTransferInput!) {
  prepareTransfer(input: $i) { preparedTransfer { state } userErrors { code message } } }"""
COMMIT = """mutation C($id: String!) {
  commitTransfer(transferId: $id) { preparedTransfer { state } userErrors { code message } } }"""
RECORD = """mutation R($t: [TransferInput!]!) { recordTransfers(transfers: $t) { recorded userErrors { code } } }"""
CREATE_GRANT = """mutation G($i: GrantInput!) { createGrant(input: $i) { grant { id } userErrors { code message } } }"""
RECONCILE = """mutation X($id: ID!) { reconcileGrant(id: $id) { reconciliation { consistent issues { subject field } }
  userErrors { code } } }"""
SPENT = """query S($id: ID!) { grant(id: $id) { spentDebitAmount { value } } }"""


@dataclass
class Phase:
    name: str
    pairs: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cpu: str = ""

    @property
    def unit(self) -> str:
        return "calls" if "calls" in self.name or "a call" in self.name else "pairs"

    @property
    def rate(self) -> float:
        return self.pairs / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000 if ordered else 0.0

    def line(self, unit: str = "pairs") -> str:
        mean = statistics.fmean(self.latencies) * 1000 if self.latencies else 0.0
        return (f"{self.name:<34} {self.pairs:>6} {unit} in {self.seconds:6.2f} s = {self.rate:7.0f} {unit}/s   "
                f"p50 {self.pct(50):5.1f} ms  p99 {self.pct(99):6.1f} ms  mean {mean:5.1f} ms  "
                f"failures {len(self.failures)}")


HTTP_CLIENT = "raw"  # set from --http-client


async def call(http: Any, query: str, variables: dict[str, Any], key: str) -> dict[str, Any]:
    if isinstance(http, Connection):
        body = json.loads(await http.post(json.dumps({"query": query, "variables": variables}).encode(), key))
    else:
        response = await http.post("/graphql", json={"query": query, "variables": variables},
                                   headers={"Authorization": f"Bearer {key}"})
        body = response.json()
    if body.get("errors"):
        raise RuntimeError(str(body["errors"])[:300])
    return dict(body["data"])


def client(base_url: str) -> Any:
    if HTTP_CLIENT == "raw":
        return Connection(base_url)
    return httpx.AsyncClient(base_url=base_url, timeout=300,
                             limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))


async def drive(base_url: str, count: int, clients: int, one: Callable[[Any, int], Awaitable[None]],
                phase: Phase, server_pid: int | None = None) -> Phase:
    numbers = iter(range(count))

    async def caller(http: Any) -> None:
        for number in numbers:
            started = time.perf_counter()
            try:
                await one(http, number)
            except Exception as exc:  # a failed pair is counted and reported, the run goes on
                phase.failures.append(f"{number}: {exc}"[:300])
                continue
            phase.latencies.append(time.perf_counter() - started)
            phase.pairs += 1

    # Connected one after the other, so that the connections spread over uvicorn workers (opened at once,
    # they all land on the first worker to wake).
    connections = []
    for _ in range(clients):
        http = client(base_url)
        await http.__aenter__()
        if not isinstance(http, Connection):
            await http.get("/healthz")
        connections.append(http)
        await asyncio.sleep(0.005)
    try:
        started = time.perf_counter()
        if server_pid is None:
            await asyncio.gather(*(caller(http) for http in connections))
        else:
            with CpuMeter(server_pid) as cpu:
                await asyncio.gather(*(caller(http) for http in connections))
        phase.seconds = time.perf_counter() - started
    finally:
        for http in connections:
            await http.__aexit__(None, None, None)
    if server_pid is not None:
        phase.cpu = cpu.line(max(1, phase.pairs), "call" if phase.unit == "calls" else "pair")
    return phase


def pair(prefix: str, grant_of: Callable[[int], tuple[str | None, str]]) -> Callable[[Any, int],
                                                                                     Awaitable[None]]:
    async def one(http: Any, number: int) -> None:
        grant_id, payer = grant_of(number)
        transfer_id = f"{prefix}-{number}"
        data: dict[str, Any] = {"transferId": transfer_id, "payerId": payer, "payeeId": "merchant",
                                "amount": "1.00", "currency": "USD"}
        if grant_id is not None:
            data["grantId"] = grant_id
        prepared = (await call(http, PREPARE, {"i": data}, INGEST_KEY))["prepareTransfer"]
        if prepared["userErrors"]:
            raise RuntimeError(f"prepare: {prepared['userErrors']}")
        committed = (await call(http, COMMIT, {"id": transfer_id}, INGEST_KEY))["commitTransfer"]
        if committed["userErrors"]:
            raise RuntimeError(f"commit: {committed['userErrors']}")
    return one


async def typename(http: Any, number: int) -> None:
    """The floor: what one call costs through HTTP and GraphQL with nothing to do."""
    if (await call(http, "{ __typename }", {}, INGEST_KEY)).get("__typename") != "Query":
        raise RuntimeError("unexpected answer to { __typename }")


def record_one(prefix: str) -> Callable[[Any, int], Awaitable[None]]:
    async def one(http: Any, number: int) -> None:
        transfer = {"transferId": f"{prefix}-{number}", "payerId": f"payer-{number % 50}", "payeeId": "merchant",
                    "amount": "1.00", "currency": "USD", "committedAt": datetime.now(UTC).isoformat()}
        result = (await call(http, RECORD, {"t": [transfer]}, INGEST_KEY))["recordTransfers"]
        if result["recorded"] != 1:
            raise RuntimeError(str(result))
    return one


async def create_grants(base_url: str, payers: list[str], limit: str) -> list[str]:
    ids: list[str] = []
    async with client(base_url) as http:
        for payer in payers:
            data = {"payerId": payer, "debitAmount": {"value": limit, "currency": "USD"},
                    "interval": "R/2026-01-01T00:00:00Z/P1D"}
            payload = (await call(http, CREATE_GRANT, {"i": data}, OPERATOR_KEY))["createGrant"]
            if payload["userErrors"]:
                raise SystemExit(f"createGrant: {payload['userErrors']}")
            ids.append(payload["grant"]["id"])
    return ids


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


async def main(args: argparse.Namespace) -> int:
    database_url, name = await create_database(args.postgres_url)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = Path(args.log)
    server = start_server(database_url, port, API_KEYS, log_path, args.workers)
    failed = False
    try:
        await wait_ready(base_url, server)
        print(f"settlegraph serve --workers {args.workers} on a fresh PostgreSQL database; {args.clients} clients; "
              f"{args.pairs} pairs a phase; {HTTP_CLIENT} HTTP client; before: {load()}")
        hot = (await create_grants(base_url, ["hot-payer"], "10000000.00"))[0]
        spread = await create_grants(base_url, [f"payer-{i:04d}" for i in range(args.grants)], "10000000.00")
        run = f"{uuid.uuid4().hex[:6]}"
        await drive(base_url, min(500, args.pairs), args.clients, pair(f"warm-{run}", lambda n: (None, "warm")),
                    Phase("warm-up"))
        phases = [
            await drive(base_url, args.pairs * 2, args.clients, typename,
                        Phase("floor: { __typename } calls"), server.pid),
            await drive(base_url, args.pairs, args.clients, record_one(f"rec-{run}"),
                        Phase("baseline: recordTransfers x1 a call"), server.pid),
            await drive(base_url, args.pairs, args.clients, pair(f"none-{run}", lambda n: (None, "no-grant-payer")),
                        Phase("baseline: pairs without grant"), server.pid),
            await drive(base_url, args.pairs, args.clients, pair(f"hot-{run}", lambda n: (hot, "hot-payer")),
                        Phase("hot: one grant"), server.pid),
            await drive(base_url, args.pairs, args.clients,
                        pair(f"spread-{run}", lambda n: (spread[n % len(spread)], f"payer-{n % len(spread):04d}")),
                        Phase(f"spread: {len(spread)} grants"), server.pid),
            # What the spread phase costs without its grants: as many other payers, so as many batches to open.
            await drive(base_url, args.pairs, args.clients,
                        pair(f"spread-none-{run}", lambda n: (None, f"other-payer-{n % len(spread):04d}")),
                        Phase(f"baseline: {len(spread)} payers, no grant"), server.pid),
        ]
        print()
        for phase in phases:
            print(phase.line(phase.unit))
            print(f"    {phase.cpu}")
            for failure in phase.failures[:3]:
                print(f"    failure {failure}")
            failed = failed or bool(phase.failures)
        print(f"\nafter: {load()}")

        async with client(base_url) as http:
            hot_phase = phases[3]
            spent = (await call(http, SPENT, {"id": hot}, OPERATOR_KEY))["grant"]["spentDebitAmount"]["value"]
            expected = f"{hot_phase.pairs}.00"
            print(f"hot grant spent today: {spent} (pairs committed: {hot_phase.pairs}) "
                  f"{'OK' if spent == expected else 'FAIL'}")
            failed = failed or spent != expected
            for grant_id in [hot, *spread[:: max(1, len(spread) // 20)]]:
                report = (await call(http, RECONCILE, {"id": grant_id}, OPERATOR_KEY))["reconcileGrant"]
                if not report["reconciliation"]["consistent"]:
                    print(f"grant {grant_id} does not reconcile: {report['reconciliation']['issues'][:3]} FAIL")
                    failed = True
            print(f"reconciliation of the hot grant and {len(spread[:: max(1, len(spread) // 20)])} spread grants: "
                  f"{'FAIL' if failed else 'OK'}")
        targets = phases[3].rate >= 300 and phases[4].rate >= 1500
        print(f"targets (hot >= 300 pairs/s, spread >= 1,500 pairs/s): {'met' if targets else 'NOT met'}")
    finally:
        stop_server(server)
        await drop_database(args.postgres_url, name)
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=os.environ.get("SETTLEGRAPH_BENCH_POSTGRES_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=3000, help="pairs (or calls) per phase")
    parser.add_argument("--grants", type=int, default=1000, help="grants of the spread phase")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of the server")
    parser.add_argument("--log", default="/tmp/settlegraph-bench-grants.log", help="the server's log file")
    parser.add_argument("--http-client", choices=("raw", "httpx"), default="raw",
                        help="the callers' HTTP client: a minimal keep-alive one (default) or httpx")
    arguments = parser.parse_args()
    HTTP_CLIENT = arguments.http_client
    sys.exit(uvloop.run(main(arguments)))
