"""The ASGI application: GraphQL (HTTP, WebSocket, GraphiQL) at /graphql, /healthz, /readyz, /metrics."""
from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from app import settlement_models
from app.auth import Authenticator
from app.core import metrics
from app.core.errors import DomainError
from app.core.settings import Settings
from app.db import connection as database
from app.events.bus import EventBus
from app.events.codec import bus_for
from graphql_schema.context import Context
from graphql_schema.schema import schema

log = logging.getLogger("settlegraph")


class SettlegraphGraphQL(GraphQL):
    def __init__(self, settings: Settings, bus: EventBus) -> None:
        super().__init__(schema, subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,), keep_alive=True,
                         keep_alive_interval=15)
        self.settings = settings
        self.bus = bus
        self.authenticator = Authenticator(settings)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:  # type: ignore[override]
        context = Context(settings=self.settings, bus=self.bus, principal=None, request=request, response=response)
        if isinstance(request, WebSocket):
            return context  # authenticated by the connection_init payload, in on_ws_connect
        try:
            context.principal = self.authenticator.authenticate(request.headers.get("authorization"))
        except DomainError as exc:
            context.auth_failure = exc.message
        return context

    async def on_ws_connect(self, context: Context) -> Any:  # type: ignore[override]
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        try:
            context.principal = self.authenticator.authenticate(header if isinstance(header, str) else None)
        except DomainError as exc:
            raise ConnectionRejectionError({"code": exc.code, "message": exc.message}) from None
        return {"actor": context.principal.name}


def _settle_heap() -> None:
    """Move what start-up built (modules, the schema, the ORM's metadata: most of the heap) out of the cyclic
    garbage collector's sight. Every full collection scanned it all again, 60-70 ms each under load, which
    was most of a busy server's tail latency."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None, *, migrate: bool = False) -> Starlette:
    settings = settings or Settings.from_env()
    bus = bus_for(settings.database_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if migrate:
            await database.migrate(settings.database_url)
        await database.init(settings.database_url)
        await settlement_models.ensure_default_model()
        await bus.start()
        _settle_heap()
        try:
            yield
        finally:
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
    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.bus = bus
    return app
