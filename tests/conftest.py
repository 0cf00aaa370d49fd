"""One parametrised fixture runs every API test on SQLite and, when SETTLEGRAPH_TEST_POSTGRES_URL is set,
on PostgreSQL: a real uvicorn server with the real ASGI app, a real HTTP client, a real database."""
from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.core.settings import Settings
from tests.support.client import GraphQLClient
from tests.support.server import (
    API_KEYS,
    POSTGRES_URL,
    Server,
    drop_postgres_database,
    fresh_postgres_database,
    reset_database,
    start_server,
)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    backend = request.param
    dropped: str | None = None
    if backend == "postgres":
        if not POSTGRES_URL:
            pytest.skip("SETTLEGRAPH_TEST_POSTGRES_URL is not set")
        database_url, dropped = await fresh_postgres_database(POSTGRES_URL)
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
            await drop_postgres_database(POSTGRES_URL, dropped)


@pytest.fixture
async def gql(server: Server) -> AsyncIterator[GraphQLClient]:
    await reset_database()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        yield GraphQLClient(http)
