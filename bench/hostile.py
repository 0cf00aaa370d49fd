"""Hostile documents against a real `settlegraph serve` (issue 10, SPEC 11): how fast they are refused.

On a fresh SQLite database (the embedded default, where one expensive document kept the server busy for ~20 s
before query costs existed) with a few thousand batches, it times, in the same run:
- the floor: `{ __typename }`;
- an ordinary page: `batches(first: 50)` with accounts (what the console asks);
- 3,000 aliased `batches(first: 500)` pages (refused by the alias bound);
- 90 aliased `batches(first: 500)` pages with accounts and history (refused by the cost limit);
- 3,000 aliased mutations, a document nested 400 deep, a body of JSON nested 100,000 deep.
Each is sent --repeat times; the median and the worst are printed with the answer's code.

    .venv/bin/python bench/hostile.py [--repeat 5] [--batches 2000]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import harness
import httpx

ADMIN_KEY = "bench-admin"
FILL = """mutation R($t: [TransferInput!]!) { recordTransfers(transfers: $t) { recorded } }"""
MODEL = """mutation { createSettlementModel(input: {name: "SECONDS", batchIntervalSeconds: 1}) {
  userErrors { code } } }"""


def documents() -> dict[str, bytes]:
    def query(text: str) -> bytes:
        return json.dumps({"query": text}).encode()

    page = "batches(first: 500) { edges { node { id accounts { net } history { at } } } }"
    return {
        "floor: { __typename }": query("{ __typename }"),
        "ordinary: 50 batches with accounts": query(
            "{ batches(first: 50) { totalCount edges { node { id name status accounts { participantId net } } } } }"),
        "3,000 aliased batch pages": query("{" + " ".join(f"p{i}: batches(first: 500) {{ totalCount }}"
                                                          for i in range(3000)) + "}"),
        "90 aliased pages over the cost": query("{" + " ".join(f"p{i}: {page}" for i in range(90)) + "}"),
        "3,000 aliased mutations": query("mutation {" + " ".join(
            f'm{i}: closeBatch(ref: {{transferId: "none"}}) {{ userErrors {{ code }} }}' for i in range(3000)) + "}"),
        "a document nested 400 deep": query("{ batches { edges { node { " * 400 + "id" + " } } }" * 400 + " }"),
        "JSON nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    }


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="settlegraph-hostile-"))
    database = f"sqlite://{folder / 'settlegraph.db'}"
    port = harness.free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = harness.start_server(database, port, f"{ADMIN_KEY}:ADMIN:bench", folder / "server.log")
    try:
        await harness.wait_ready(base_url, server)
        async with httpx.AsyncClient(base_url=base_url, timeout=120,
                                     headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
            await http.post("/graphql", json={"query": MODEL})
            for start in range(0, args.batches, 500):  # one-second batches, two transfers each
                transfers = [{"transferId": f"h-{n}-{k}", "payerId": f"p{k}", "payeeId": f"q{k}", "amount": "1.00",
                              "currency": "USD", "settlementModel": "SECONDS",
                              "committedAt": f"2026-03-02T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"}
                             for n in range(start, min(start + 500, args.batches)) for k in range(2)]
                await http.post("/graphql", json={"query": FILL, "variables": {"t": transfers}})
            print(f"bench/hostile.py: settlegraph serve on SQLite, {args.batches} batches, {args.repeat} sends each, "
                  f"{harness.os.cpu_count()} cores")
            for name, body in documents().items():
                times, answer = [], None
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    response = await http.post("/graphql", content=body, headers={"content-type": "application/json"})
                    times.append(time.perf_counter() - started)
                    answer = response
                assert answer is not None
                errors = answer.json().get("errors") or []
                code = errors[0].get("extensions", {}).get("code") if errors else "answered"
                median = statistics.median(times) * 1000
                print(f"  {name:36} HTTP {answer.status_code} {code:20} median {median:8.1f} ms"
                      f"  worst {max(times) * 1000:8.1f} ms")
            healthy = (await http.get("/healthz")).status_code == 200
            print(f"server still up: {'yes' if healthy and server.poll() is None else 'NO'}")
    finally:
        harness.stop_server(server)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batches", type=int, default=2000)
    asyncio.run(main(parser.parse_args()))
