"""One parametrised fixture runs every API test on SQLite and, when SETTLEGRAPH_TEST_POSTGRES_URL is set,
on PostgreSQL: a real uvicorn server with the real ASGI app, a real HTTP client, a real database."""
from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
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
}
POSTGRES_URL = os.environ.get("SETTLEGRAPH_TEST_POSTGRES_URL")


def key_of(role: str) -> str:
    return API_KEYS[role].split(":")[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _fresh_postgres_database(base_url: str) -> tuple[str, str]:
    """A new, empty database on the server of base_url: (its url, its name)."""
    name = f"settlegraph_test_{uuid.uuid4().hex[:10]}"
    prefix, _, _ = base_url.rstrip("/").rpartition("/")
    admin = await asyncpg.connect(dsn=f"{prefix}/postgres".replace("postgres://", "postgresql://", 1))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"{prefix}/{name}", name


async def _drop_postgres_database(base_url: str, name: str) -> None:
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


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    backend = request.param
    dropped: str | None = None
    if backend == "postgres":
        if not POSTGRES_URL:
            pytest.skip("SETTLEGRAPH_TEST_POSTGRES_URL is not set")
        database_url, dropped = await _fresh_postgres_database(POSTGRES_URL)
    else:
        database_url = f"sqlite://{tmp_path_factory.mktemp('db') / 'settlegraph.db'}"
    settings = Settings(database_url=database_url, api_keys=",".join(API_KEYS.values()),
                        four_eyes=True)
    uv_server, task, base_url, app = await start_server(settings)
    try:
        yield Server(backend, database_url, base_url, settings, app)
    finally:
        uv_server.should_exit = True
        await task
        if dropped and POSTGRES_URL:
            await _drop_postgres_database(POSTGRES_URL, dropped)


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


class GraphQLClient:
    """A real GraphQL-over-HTTP client; `role` picks the API key sent."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def raw(self, query: str, variables: dict[str, Any] | None = None, role: str | None = "admin",
                  headers: dict[str, str] | None = None) -> dict[str, Any]:
        sent = dict(headers or {})
        if role is not None:
            sent["Authorization"] = f"Bearer {key_of(role)}"
        response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}},
                                        headers=sent)
        body = response.json()
        assert isinstance(body, dict), body
        return body

    async def __call__(self, query: str, variables: dict[str, Any] | None = None, role: str = "admin") -> Any:
        """Data of a query that must succeed without GraphQL errors."""
        body = await self.raw(query, variables, role)
        assert not body.get("errors"), body["errors"]
        return body["data"]


@pytest.fixture
async def gql(server: Server) -> AsyncIterator[GraphQLClient]:
    await reset_database()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        yield GraphQLClient(http)
