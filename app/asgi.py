"""The ASGI application: GraphQL (HTTP, WebSocket, GraphiQL) at /graphql, the console at /console and the pages'
assets at /assets, /healthz, /readyz, /metrics."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from app import settlement_models, web
from app.audit.chain import seal_all
from app.core import metrics
from app.core.periodic import Periodic
from app.core.settings import Settings
from app.db import connection as database
from app.events.codec import bus_for
from app.idempotency import purge_expired
from app.loopback import LoopbackOnly
from app.streams import relay
from graphql_schema.view import SettlegraphGraphQL

log = logging.getLogger("settlegraph")


def _settle_heap() -> None:
    """Move what start-up built (modules, the schema, the ORM's metadata: most of the heap) out of the cyclic
    garbage collector's sight. Every full collection scanned it all again, 60-70 ms each under load, which
    was most of a busy server's tail latency. (Matrix-wide commands collect less often while they run:
    app/core/turns.bulk_work.)"""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None, *, migrate: bool = False) -> Starlette:
    settings = settings or Settings.from_env()
    bus = bus_for(settings.database_url)
    lag = metrics.LoopLag()
    background = [Periodic("audit-sealer", settings.audit_seal_seconds, seal_all),
                  Periodic("idempotency-purger", 60.0, purge_expired),
                  Periodic("loop-lag", lag.every, lag.tick)]
    if not settings.nats_url:  # nothing relays the outbox: it keeps its rows; the backlog gauge shows them
        background.append(Periodic("outbox-backlog", 30.0, relay.backlog))
    relay_stopping = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if migrate:
            await database.migrate(settings.database_url)
        await database.init(settings.database_url)
        await settlement_models.ensure_default_model()
        await bus.start()
        for task in background:
            task.start()
        # SPEC §13: the outbox relay (one at a time across processes: app/streams/relay.py).
        relaying = asyncio.create_task(relay.run(settings, relay_stopping), name="settlegraph-outbox-relay") \
            if settings.nats_url else None
        _settle_heap()
        try:
            yield
        finally:
            for task in background:
                await task.stop()
            if relaying is not None:
                relay_stopping.set()
                try:
                    await asyncio.wait_for(relaying, 5)
                except (TimeoutError, asyncio.CancelledError):
                    pass
            await bus.stop()
            await database.close()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await database.connection().execute_query("SELECT 1")
        except Exception as exc:  # readiness reports any database failure, never raises
            return JSONResponse({"status": "unavailable", "database": str(exc)[:200]}, status_code=503)
        return JSONResponse({"status": "ok", "database": "reachable"})

    async def metrics_endpoint(request: Request) -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    graphql = SettlegraphGraphQL(settings, bus)
    # Without credentials every caller is ADMIN: then only local clients are answered (SPEC §10).
    middleware = [Middleware(LoopbackOnly)] if graphql.authenticator.open_access else []
    if settings.cors_origins:  # pages of these origins (another admin frontend) may call the API (RUNNING.md)
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                                     allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"],
                                     max_age=600))
    app = Starlette(
        routes=[
            Route("/graphql", graphql),  # every method: the endpoint answers the ones it does not serve
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            *web.routes(),
        ],
        lifespan=lifespan,
        middleware=middleware,
    )
    app.state.settings = settings
    app.state.bus = bus
    return app
