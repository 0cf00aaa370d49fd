"""settlegraph as its own process: `settlegraph serve` started and stopped as an operator would."""
from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.server import API_KEYS, free_port

SETTLEGRAPH = str(Path(sys.executable).with_name("settlegraph"))


@dataclass
class Process:
    proc: asyncio.subprocess.Process
    base_url: str

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/graphql"

    async def gql(self, query: str, variables: dict[str, object], role: str) -> dict[str, object]:
        key = API_KEYS[role].split(":")[0]
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as http:
            body = (await http.post("/graphql", json={"query": query, "variables": variables},
                                    headers={"Authorization": f"Bearer {key}"})).json()
        assert not body.get("errors"), body
        return body["data"]  # type: ignore[no-any-return]


async def serve(database_url: str, workers: int = 1, *, credentials: bool = True, **env: str) -> Process:
    """`settlegraph serve` (the console script) on a free loopback port, once it is ready; with the test API keys,
    or, credentials=False, in the zero set-up mode (every caller ADMIN, loopback only)."""
    port = free_port()
    env = {**os.environ, "SETTLEGRAPH_DATABASE_URL": database_url, "SETTLEGRAPH_LOG_LEVEL": "WARNING", **env}
    env.pop("SETTLEGRAPH_OPEN_ACCESS", None)
    if credentials:
        env["SETTLEGRAPH_API_KEYS"] = ",".join(API_KEYS.values())
    else:
        env.pop("SETTLEGRAPH_API_KEYS", None)
    proc = await asyncio.create_subprocess_exec(
        SETTLEGRAPH, "serve", "--port", str(port), "--workers", str(workers), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as http:
        for _ in range(300):
            if proc.returncode is not None:
                raise RuntimeError(f"settlegraph serve exited with {proc.returncode}")
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return Process(proc, base_url)
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    proc.terminate()
    await proc.wait()
    raise RuntimeError("settlegraph serve did not become ready")


async def stop(process: Process) -> None:
    process.proc.terminate()
    try:
        await asyncio.wait_for(process.proc.wait(), 15)
    except TimeoutError:
        process.proc.kill()
        await process.proc.wait()


async def start(command: str, database_url: str, nats_url: str, *args: str, log: Path | None = None,
                **env: str) -> asyncio.subprocess.Process:
    """`settlegraph <command>` (consume, relay) as its own process, on this database and NATS server; its stderr
    (JSON log lines) appended to `log` when given."""
    full_env = {**os.environ, "SETTLEGRAPH_DATABASE_URL": database_url, "SETTLEGRAPH_NATS_URL": nats_url,
                "SETTLEGRAPH_LOG_LEVEL": "WARNING", **env}
    with (log or Path(os.devnull)).open("ab") as stderr:
        return await asyncio.create_subprocess_exec(SETTLEGRAPH, command, *args, env=full_env,
                                                    stdout=asyncio.subprocess.DEVNULL, stderr=stderr)


async def kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL, as a crash: no clean-up runs."""
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


async def terminate(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
