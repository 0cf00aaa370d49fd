"""A real uvicorn server on the real ASGI app, on a fresh SQLite or PostgreSQL database, and its API keys."""
from __future__ import annotations

import asyncio
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import uvicorn
from tortoise import Tortoise

from app import settlement_models
from app.asgi import create_app
from app.core.settings import Settings

API_KEYS = {
    "admin": "k-admin:ADMIN:alice-admin",
    "operator": "k-operator:OPERATOR:oscar-operator",
    "operator2": "k-operator2:OPERATOR:olga-operator",
    "settler": "k-settler:SETTLER:sam-settler",
    "settler2": "k-settler2:SETTLER:sue-settler",
    "viewer": "k-viewer:VIEWER:vera-viewer",
    "ingest": "k-ingest:INGEST:clearing-engine",
    "auditor": "k-auditor:AUDITOR:ada-auditor",
    "participant": "k-participant:PARTICIPANT:pat-participant:dfsp-p",
}
POSTGRES_URL = os.environ.get("SETTLEGRAPH_TEST_POSTGRES_URL")


def key_of(role: str) -> str:
    return API_KEYS[role].split(":")[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def fresh_postgres_database(base_url: str) -> tuple[str, str]:
    """A new, empty database on the server of base_url: (its url, its name)."""
    name = f"settlegraph_test_{uuid.uuid4().hex[:10]}"
    prefix, _, _ = base_url.rstrip("/").rpartition("/")
    admin = await asyncpg.connect(dsn=f"{prefix}/postgres".replace("postgres://", "postgresql://", 1))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"{prefix}/{name}", name


async def drop_postgres_database(base_url: str, name: str) -> None:
    prefix, _, _ = base_url.rstrip("/").rpartition("/")
    admin = await asyncpg.connect(dsn=f"{prefix}/postgres".replace("postgres://", "postgresql://", 1))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@dataclass
class Server:
    backend: str
    database_url: str
    base_url: str
    settings: Settings
    app: Any

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/graphql"


async def start_server(settings: Settings) -> tuple[uvicorn.Server, asyncio.Task[None], str, Any]:
    app = create_app(settings, migrate=True)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on",
                            ws="websockets-sansio")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    return server, task, f"http://127.0.0.1:{port}", app


async def reset_database() -> None:
    """Empty every table (not the migration records) and offer the DEFAULT model again."""
    conn = Tortoise.get_connection("default")
    tables = sorted({model._meta.db_table for app in Tortoise.apps.values() for model in app.values()})
    if conn.capabilities.dialect == "postgres":
        await conn.execute_script(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    else:
        await conn.execute_script("PRAGMA foreign_keys=OFF;" + "".join(f"DELETE FROM {t};" for t in tables)
                                  + "DELETE FROM sqlite_sequence; PRAGMA foreign_keys=ON;")
    await settlement_models.ensure_default_model()
