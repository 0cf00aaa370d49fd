"""Subscriptions benchmark (issue 4): live events through a real `settlegraph serve` subprocess.

1. fan-out: N (default 1,000) WebSocket subscribers on one server process subscribe to batchStatusChanged;
   the bench changes a batch's status R times (dispute / resolve, one a second) and measures, per delivered
   event, the delay from the commit to the subscriber's receipt, and the server's RSS with everyone connected.
   The commit time is bounded by two clocks of this machine: the event's own `at` (taken inside the
   transaction, just before COMMIT, so `receipt - at` is an upper bound) and the mutation's response
   (sent after COMMIT and after the publish, so `receipt - response` is a lower bound). The baseline in the
   same run: the same change with 1 subscriber. Targets: p99 <= 100 ms, RSS <= 300 MB.
2. matrix: M (default 100) subscribers on matrixUpdated(id) while T transfers/s (default 1,000) are recorded
   into the matrix's batches for D seconds: pushes per second per subscriber (target: a few) and the delay
   from a recordTransfers commit to the next push that includes it (target <= 500 ms). Skipped, and said
   so, when the server has no matrixUpdated / createMatrix yet.

    .venv/bin/python bench/subscriptions.py                       # PostgreSQL at 127.0.0.1, fresh database
    .venv/bin/python bench/subscriptions.py --subscribers 200 --rounds 5 --sqlite

The server, PostgreSQL and this client (all subscribers in one process) share the machine's cores: the
client's own receive loop is part of the measured delay.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import harness
import httpx
import psutil
import websockets

ROOT = Path(__file__).resolve().parent.parent
SETTLEGRAPH = str(Path(sys.executable).with_name("settlegraph"))
KEYS = {"admin": "bench-admin", "viewer": "bench-viewer", "ingest": "bench-ingest", "operator": "bench-operator"}
API_KEYS = ",".join(f"{key}:{role.upper()}:bench-{role}" for role, key in KEYS.items())

STATUS = "subscription { batchStatusChanged { batch { id status } from to at } }"
RECORD = """mutation($t: [TransferInput!]!) { recordTransfers(transfers: $t) {
  recorded results { batch { id } } userErrors { code message } } }"""
DISPUTE = """mutation($id: ID!) { disputeBatch(ref: {id: $id}) { batch { status } userErrors { code } } }"""
RESOLVE = """mutation($id: ID!) { resolveBatchDispute(ref: {id: $id}) { batch { status } userErrors { code } } }"""
BATCH_STATUS = """query($id: ID!) { batch(ref: {id: $id}) { status } }"""


COMPRESSION: list[str | None] = ["deflate"]  # what the subscribers offer; --no-compression: None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values_ms: list[float]) -> str:
    if not values_ms:
        return "no samples"
    return (f"n={len(values_ms)} p50={percentile(values_ms, 50):.1f} p90={percentile(values_ms, 90):.1f} "
            f"p99={percentile(values_ms, 99):.1f} max={max(values_ms):.1f} ms")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    base_url: str
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=60)

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/graphql"

    def rss_mb(self) -> float:
        process = psutil.Process(self.proc.pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20

    async def gql(self, query: str, variables: dict[str, Any] | None = None, role: str = "admin") -> Any:
        body = (await self.http.post("/graphql", json={"query": query, "variables": variables or {}},
                                     headers={"Authorization": f"Bearer {KEYS[role]}"})).json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]


async def start_server(database_url: str) -> Server:
    port = free_port()
    env = {**os.environ, "SETTLEGRAPH_DATABASE_URL": database_url, "SETTLEGRAPH_API_KEYS": API_KEYS,
           "SETTLEGRAPH_LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(SETTLEGRAPH, "serve", "--port", str(port), env=env, cwd=ROOT,
                                                stdout=asyncio.subprocess.DEVNULL)
    server = Server(proc, f"http://127.0.0.1:{port}")
    for _ in range(600):
        if proc.returncode is not None:
            raise SystemExit(f"settlegraph serve exited with {proc.returncode}")
        try:
            if (await server.http.get("/readyz")).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("settlegraph serve did not become ready")


class Subscriber:
    def __init__(self, ws_url: str) -> None:
        self.ws_url = ws_url
        self.ws: Any = None
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.reader: asyncio.Task[None] | None = None

    async def start(self, query: str, variables: dict[str, Any] | None = None) -> None:
        self.ws = await websockets.connect(self.ws_url, subprotocols=["graphql-transport-ws"], max_size=2**24,
                                           open_timeout=60, compression=COMPRESSION[0])
        await self.ws.send(json.dumps({"type": "connection_init",
                                       "payload": {"Authorization": f"Bearer {KEYS['viewer']}"}}))
        ack = json.loads(await self.ws.recv())
        assert ack["type"] == "connection_ack", ack
        await self.ws.send(json.dumps({"id": "1", "type": "subscribe",
                                       "payload": {"query": query, "variables": variables or {}}}))
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            now = time.time()
            message = json.loads(raw)
            if message.get("type") == "next":
                self.received.append((now, message["payload"]))

    async def stop(self) -> None:
        if self.reader:
            self.reader.cancel()
        await self.ws.close()


async def connect_all(ws_url: str, count: int, query: str, variables: dict[str, Any] | None = None) -> list[Subscriber]:
    subscribers = [Subscriber(ws_url) for _ in range(count)]
    for start in range(0, count, 50):  # in waves, not to overflow the accept backlog
        await asyncio.gather(*(s.start(query, variables) for s in subscribers[start:start + 50]))
    await asyncio.sleep(1.0)  # every subscription registered with the bus
    return subscribers


async def fan_out(server: Server, batch_id: str, count: int, rounds: int, profile: str | None = None
                  ) -> dict[str, Any]:
    subscribers = await connect_all(server.ws_url, count, STATUS)
    rss = server.rss_mb()
    profiler = None
    if profile:  # py-spy on the server while the events fan out (not while subscribers connect)
        profiler = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(server.proc.pid), "-f", "raw",
            "-o", profile, "-r", "250", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await asyncio.sleep(1)
    upper: list[float] = []
    lower: list[float] = []
    missing = 0
    for _ in range(rounds):
        for s in subscribers:
            s.received.clear()
        # Alternate from the batch's current status: an earlier phase with an odd number of rounds leaves it
        # IN_DISPUTE, and a refused transition publishes nothing.
        current = await server.gql(BATCH_STATUS, {"id": batch_id})
        mutation = RESOLVE if current["batch"]["status"] == "IN_DISPUTE" else DISPUTE
        await server.gql(mutation, {"id": batch_id}, role="operator")
        responded = time.time()
        deadline = time.time() + 10
        while time.time() < deadline and any(not s.received for s in subscribers):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        for s in subscribers:
            if not s.received:
                missing += 1
                continue
            received_at, payload = s.received[0]
            at = datetime.fromisoformat(payload["data"]["batchStatusChanged"]["at"]).timestamp()
            upper.append((received_at - at) * 1000)
            lower.append((received_at - responded) * 1000)
        await asyncio.sleep(1.0)
    rss_after = server.rss_mb()
    if profiler is not None:
        profiler.send_signal(2)
        await profiler.wait()
    for s in subscribers:
        await s.stop()
    return {"upper": upper, "lower": lower, "missing": missing, "rss": rss, "rss_after": rss_after}


HEAVY = """subscription { batchStatusChanged { batch { id accounts { participantId currency debit credit net }
  history { from to at actor reason } } } }"""


async def slow_consumers(server: Server, count: int, events: int) -> dict[str, Any]:
    """`count` subscribers that stop reading (small receive buffers, no compression) while `events` large
    events (a batch of 400 accounts, ~35 kB each) are published; the server's RSS as it goes, and how each
    slow subscriber's connection ended once it read again."""
    now = datetime.now(UTC)
    transfers = [{"transferId": f"slow-{uuid.uuid4().hex}", "payerId": f"p{i:03d}", "payeeId": f"q{i:03d}",
                  "amount": "1.00", "currency": "EUR", "committedAt": now.isoformat()} for i in range(200)]
    data = await server.gql(RECORD, {"t": transfers}, role="ingest")
    batch_id = data["recordTransfers"]["results"][0]["batch"]["id"]
    slow = []
    host, port = server.base_url.split("//")[1].split(":")
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        ws = await websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"], sock=sock,
                                      max_queue=1, compression=None, max_size=2**24)
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {KEYS['viewer']}"}}))
        await ws.recv()
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": HEAVY}}))
        slow.append(ws)  # and never read again, until the end
    await asyncio.sleep(1)
    rss = [(0, server.rss_mb())]
    began = time.time()
    for i in range(1, events + 1):
        await server.gql(DISPUTE if i % 2 else RESOLVE, {"id": batch_id}, role="operator")
        if i % max(1, events // 6) == 0:
            rss.append((i, server.rss_mb()))
    elapsed = time.time() - began
    codes: dict[Any, int] = {}
    for ws in slow:
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as closed:
            key = (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else "no close frame"
        except TimeoutError:
            key = "still open"
        codes[key] = codes.get(key, 0) + 1
        await ws.close()
    return {"rss": rss, "codes": codes, "elapsed": elapsed}


async def has_matrices(server: Server) -> bool:
    data = await server.gql("{ __schema { subscriptionType { fields { name } } mutationType { fields { name } } } }")
    subs = {f["name"] for f in data["__schema"]["subscriptionType"]["fields"]}
    mutations = {f["name"] for f in data["__schema"]["mutationType"]["fields"]}
    return "matrixUpdated" in subs and "createMatrix" in mutations


MATRIX_QUERY = """subscription($id: ID!) { matrixUpdated(id: $id) {
  id status batchCount checksum byCurrency { currency debit credit } } }"""


async def matrix_load(server: Server, subscribers: int, rate: int, seconds: float) -> dict[str, Any] | None:
    if not await has_matrices(server):
        return None
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    created = await server.gql(
        """mutation($i: MatrixInput!) { createMatrix(input: $i) { matrix { id } userErrors { code message } } }""",
        {"i": {"model": "DEFAULT", "period": {"unit": "HOUR", "start": (hour - timedelta(hours=1)).isoformat(),
                                               "end": (hour + timedelta(hours=2)).isoformat()}}}, role="operator")
    payload = created["createMatrix"]
    if payload.get("userErrors"):
        raise RuntimeError(payload["userErrors"])
    matrix_id = payload["matrix"]["id"]
    subs = await connect_all(server.ws_url, subscribers, MATRIX_QUERY, {"id": matrix_id})
    calls: list[tuple[float, int]] = []  # (request start, transfers recorded up to and with this call)
    per_call = max(1, rate // 10)  # ten calls a second
    recorded = 0
    began = time.time()
    call = 0
    while time.time() - began < seconds:
        batch = [{"transferId": f"m-{uuid.uuid4().hex}", "payerId": f"p{i % 10}", "payeeId": f"q{i % 7}",
                  "amount": "1", "currency": "JPY", "committedAt": datetime.now(UTC).isoformat()}
                 for i in range(per_call)]
        started = time.time()
        await server.gql(RECORD, {"t": batch}, role="ingest")
        recorded += per_call
        calls.append((started, recorded))
        call += 1
        delay = began + call / 10 - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
    elapsed = time.time() - began
    await asyncio.sleep(1.5)
    # Each transfer is 1 JPY (a currency nothing else here uses), so a push's JPY debit counts the transfers it
    # includes: the delay of a call is from its request's start (before its commit) to the first push with it.
    def jpy(push: dict[str, Any]) -> float:
        return float(next((c["debit"] for c in push["data"]["matrixUpdated"]["byCurrency"]
                           if c["currency"] == "JPY"), "0"))

    delays: list[float] = []
    for s in subs:
        seen = [(t, jpy(p)) for t, p in s.received]
        for started, total in calls:
            first = next((t for t, debit in seen if debit >= total), None)
            if first is not None:
                delays.append((first - started) * 1000)
    pushes = [len(s.received) for s in subs]
    complete = sum(1 for s in subs if s.received and jpy(s.received[-1][1]) == recorded)
    for s in subs:
        await s.stop()
    return {"pushes_per_s": [p / elapsed for p in pushes], "delays": delays, "transfers_per_s": recorded / elapsed,
            "complete": complete}


async def fresh_database(args: argparse.Namespace) -> tuple[str, str | None]:
    if args.sqlite:
        directory = tempfile.mkdtemp(prefix="sg-bench-")
        return f"sqlite://{directory}/bench.db", None
    return await harness.create_database(args.postgres)


async def main(args: argparse.Namespace) -> None:
    database_url, dropped = await fresh_database(args)
    server = await start_server(database_url)
    try:
        print(f"server pid {server.proc.pid} on {'SQLite' if args.sqlite else 'PostgreSQL'}; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; RSS idle {server.rss_mb():.0f} MB")
        now = datetime.now(UTC)
        data = await server.gql(RECORD, {"t": [{"transferId": "fan-1", "payerId": "a", "payeeId": "b",
                                                "amount": "1.00", "currency": "USD",
                                                "committedAt": now.isoformat()}]}, role="ingest")
        batch_id = data["recordTransfers"]["results"][0]["batch"]["id"]

        baseline = await fan_out(server, batch_id, 1, args.rounds)
        print(f"\n[baseline] 1 subscriber, {args.rounds} status changes")
        print(f"  commit->receipt upper bound (from event.at):     {summary(baseline['upper'])}")
        print(f"  commit->receipt lower bound (from the response): {summary(baseline['lower'])}")

        result = await fan_out(server, batch_id, args.subscribers, args.rounds, args.profile)
        print(f"\n[fan-out] {args.subscribers} subscribers on one process, {args.rounds} status changes "
              f"(target p99 <= 100 ms, RSS <= 300 MB)")
        print(f"  commit->receipt upper bound (from event.at):     {summary(result['upper'])}")
        print(f"  commit->receipt lower bound (from the response): {summary(result['lower'])}")
        print(f"  missing deliveries: {result['missing']}")
        print(f"  server RSS with them connected: {result['rss']:.0f} MB "
              f"(after the rounds {result['rss_after']:.0f} MB)")
        print(f"  load average now {os.getloadavg()[0]:.2f}")

        if args.slow:
            slow = await slow_consumers(server, args.slow, args.slow_events)
            print(f"\n[slow consumers] {args.slow} subscribers stop reading; {args.slow_events} events of ~35 kB "
                  f"(target: server memory flat, each slow one closed with a reason)")
            print("  server RSS MB after n events: " + ", ".join(f"{n}: {mb:.0f}" for n, mb in slow["rss"]))
            print(f"  the events took {slow['elapsed']:.1f} s; how the slow connections ended: {slow['codes']}")
            print("  (uvicorn also drops a client that answers no ping for 20 + 20 s: code 1011 or no close frame)")

        matrix = (await matrix_load(server, args.matrix_subscribers, args.rate, args.seconds)
                  if args.matrix_subscribers else None)
        if matrix is None:
            print("\n[matrix] skipped (--matrix-subscribers 0, or no matrixUpdated/createMatrix on this server)")
        else:
            rates = matrix["pushes_per_s"]
            print(f"\n[matrix] {args.matrix_subscribers} subscribers on matrixUpdated, "
                  f"{matrix['transfers_per_s']:.0f} transfers/s recorded for {args.seconds:.0f} s")
            print(f"  pushes per second per subscriber: min {min(rates):.2f} mean {statistics.mean(rates):.2f} "
                  f"max {max(rates):.2f} (target: a few, not one per transfer)")
            print(f"  recordTransfers request start -> first push including it (upper bound of commit -> push): "
                  f"{summary(matrix['delays'])} (target <= 500 ms)")
            print(f"  subscribers whose last push holds every transfer: {matrix['complete']} of {len(rates)}")
            print(f"  server RSS {server.rss_mb():.0f} MB")
    finally:
        server.proc.terminate()
        await server.proc.wait()
        await server.http.aclose()
        if dropped:
            await harness.drop_database(args.postgres, dropped)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10, help="status changes measured")
    parser.add_argument("--slow", type=int, default=20, help="slow consumers (0: skip)")
    parser.add_argument("--slow-events", type=int, default=300)
    parser.add_argument("--matrix-subscribers", type=int, default=100)
    parser.add_argument("--rate", type=int, default=1000, help="transfers per second into the matrix")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--profile", help="write py-spy collapsed stacks of the server during the fan-out here")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres",
                        help="server URL; a fresh database is created on it and dropped afterwards")
    parser.add_argument("--no-compression", action="store_true",
                        help="subscribers do not offer permessage-deflate (browsers do)")
    arguments = parser.parse_args()
    if arguments.no_compression:
        COMPRESSION[0] = None
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(arguments))
