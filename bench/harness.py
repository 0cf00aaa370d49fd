"""What every benchmark needs around the code it measures: a fresh PostgreSQL database and a real
`settlegraph serve` subprocess from this checkout."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent


def dsn(url: str) -> str:
    """asyncpg's spelling of a settlegraph database URL."""
    return url.replace("postgres://", "postgresql://", 1).replace("asyncpg://", "postgresql://", 1)


async def _admin(base_url: str, statement: str) -> None:
    prefix = base_url.rstrip("/").rpartition("/")[0]
    admin = await asyncpg.connect(dsn=dsn(f"{prefix}/postgres"))
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


async def create_database(base_url: str, prefix: str = "settlegraph_bench") -> tuple[str, str]:
    """A new, empty database on the server of base_url: (its URL, its name)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await _admin(base_url, f'CREATE DATABASE "{name}"')
    return f"{base_url.rstrip('/').rpartition('/')[0]}/{name}", name


async def drop_database(base_url: str, name: str) -> None:
    await _admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class RawConnection:
    """What the app's stores (app/db/dialect.Store) call on a Tortoise connection, over a plain asyncpg connection:
    a bench runs the app's own SQL without the ORM."""

    class capabilities:  # mirrors the attribute of a Tortoise connection
        dialect = "postgres"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def execute_query_dict(self, sql: str, values: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.conn.fetch(sql, *(values or ()))]

    async def execute_query(self, sql: str, values: Sequence[Any] | None = None) -> tuple[int, list[Any]]:
        """As Tortoise's: an UPDATE, DELETE or INSERT gives the rows it touched, anything else its rows."""
        if sql.lstrip().upper().startswith(("UPDATE", "DELETE", "INSERT")):
            count = (await self.conn.execute(sql, *(values or ()))).rsplit(" ", 1)[-1]
            return (int(count) if count.isdigit() else 0), []
        rows = await self.conn.fetch(sql, *(values or ()))
        return len(rows), rows


def load() -> str:
    """The machine's load, printed beside every figure."""
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f} on {os.cpu_count()} cores"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(database_url: str, port: int, api_keys: str, log_path: Path, workers: int = 1,
                 **env: str) -> subprocess.Popen[bytes]:
    """`settlegraph serve` (what the console script runs) from this checkout, in a session of its own."""
    environment = {**os.environ, "SETTLEGRAPH_DATABASE_URL": database_url, "SETTLEGRAPH_API_KEYS": api_keys,
                   "SETTLEGRAPH_LOG_LEVEL": os.environ.get("SETTLEGRAPH_LOG_LEVEL", "WARNING"), **env}
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", str(workers)]
    return subprocess.Popen(command, env=environment, cwd=ROOT, stdout=log_path.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


async def wait_ready(base_url: str, server: subprocess.Popen[bytes], workers: int = 1) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"server exited with {server.returncode}; see its log")
            with suppress(httpx.HTTPError):
                if (await http.get("/readyz")).status_code == 200:
                    if workers > 1:
                        await asyncio.sleep(2.0)  # let every worker finish its start-up
                    return
            await asyncio.sleep(0.1)
    raise SystemExit("server did not become ready within 60 s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


class Connection:
    """One keep-alive HTTP/1.1 connection with just enough of the protocol for POST /graphql: the callers share
    the machine's two cores with the server and PostgreSQL, and httpx costs ~1.3 ms of CPU a request here (this
    ~0.2 ms). `--http-client httpx` measures with httpx instead.

    It reads only Content-Length framed responses, which is what uvicorn sends for /graphql."""

    def __init__(self, base_url: str) -> None:
        host, _, port = base_url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()

    async def post(self, body: bytes, key: str) -> bytes:
        assert self.reader is not None and self.writer is not None
        self.writer.write(b"POST /graphql HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                          b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s"
                          % (self.host.encode(), key.encode(), len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = head[9:12]
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
        payload = await self.reader.readexactly(length)
        if status != b"200":
            raise RuntimeError(f"HTTP {status.decode()}: {payload[:200]!r}")
        return payload


class CpuMeter:
    """CPU seconds used by the server (with its workers) and by PostgreSQL while a phase runs: every PostgreSQL
    process, or with `database` only the backends connected to it (their process title names it), which leaves
    out other benchmarks sharing the server (and PostgreSQL's own background writers)."""

    def __init__(self, pid: int, database: str | None = None) -> None:
        self.root = psutil.Process(pid)
        self.database = database

    def _sample(self) -> tuple[float, float, float]:
        server = postgres = 0.0
        own = psutil.Process().cpu_times()
        self.per_process: dict[int, float] = {}
        with suppress(psutil.Error):
            for proc in [self.root, *self.root.children(recursive=True)]:
                with suppress(psutil.Error):
                    times = proc.cpu_times()
                    server += times.user + times.system
                    self.per_process[proc.pid] = times.user + times.system
        self.backends: dict[int, float] = {}
        for proc in psutil.process_iter(["name", "cpu_times", "cmdline"]):
            if proc.info["name"] not in ("postgres", "postmaster") or proc.info["cpu_times"] is None:
                continue
            if self.database is not None and self.database not in " ".join(proc.info["cmdline"] or ()):
                continue
            used = proc.info["cpu_times"].user + proc.info["cpu_times"].system
            postgres += used
            self.backends[proc.pid] = used
        return server, postgres, own.user + own.system

    def __enter__(self) -> CpuMeter:
        self.start = self._sample()
        self.per_process_start = self.per_process
        self._started_backends = self.backends
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._sample()
        self.seconds = time.perf_counter() - self.started
        self.server, self.postgres, self.client = (b - a for a, b in zip(self.start, end, strict=True))
        if self.database is not None:  # per backend: one that connected meanwhile counts from zero
            self.postgres = sum(used - self._started_backends.get(pid, 0.0) for pid, used in self.backends.items())

    def line(self, items: int, unit: str) -> str:
        split = ""
        if len(self.per_process) > 1:  # uvicorn workers: how evenly the connections landed
            used = [self.per_process[pid] - self.per_process_start.get(pid, 0.0) for pid in sorted(self.per_process)]
            split = " = " + " + ".join(f"{u:.1f}" for u in used)
        return (f"CPU: server {self.server:.1f} s{split} ({self.server / self.seconds * 100:.0f}% of a core, "
                f"{self.server / items * 1000:.3f} ms/{unit}), postgres {self.postgres:.1f} s "
                f"({self.postgres / self.seconds * 100:.0f}%, {self.postgres / items * 1000:.3f} ms/{unit}; "
                f"{'backends of this database' if self.database else 'every postgres process on the machine'}), "
                f"this client {self.client:.1f} s ({self.client / self.seconds * 100:.0f}%)")


def verdict(failures: list[str], ok: str, log: Path | str | None = None) -> int:
    """A bench's last lines and exit status: its failed checks (FAIL, 1) or what held (OK, 0)."""
    if failures:
        print(f"\nFAIL ({len(failures)}):\n  " + "\n  ".join(failures[:20]))
        if log:
            print(f"log: {log}")
        return 1
    print(f"\nOK: {ok}")
    return 0
