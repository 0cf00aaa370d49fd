"""The GraphQL endpoint (HTTP, WebSocket graphql-transport-ws, GraphiQL): who is calling, and a clean answer to any
request body (SPEC §11): a body that is not a JSON object, JSON nested too deep, undecodable bytes or numbers too
long to read get HTTP 400 with a JSON GraphQL error, never a plain-text error page."""
from __future__ import annotations

import json
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from app import web
from app.auth import Authenticator
from app.core import errors
from app.core.errors import DomainError
from app.core.settings import Settings
from app.events.bus import EventBus
from app.loopback import loopback_origin
from graphql_schema.context import Context
from graphql_schema.schema import schema


def error_response(message: str, status: int, code: str = errors.BAD_REQUEST) -> JSONResponse:
    return JSONResponse({"data": None, "errors": [{"message": message, "extensions": {"code": code}}]},
                        status_code=status)


class SettlegraphGraphQL(GraphQL):
    def __init__(self, settings: Settings, bus: EventBus) -> None:
        super().__init__(schema, subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,), keep_alive=True,
                         keep_alive_interval=15, allowed_origins=settings.cors_origins)
        self.settings = settings
        self.bus = bus
        self.authenticator = Authenticator(settings)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response: Any = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as exc:  # a refusal of the request itself, answered as GraphQL errors are
            response = error_response(exc.reason, exc.status_code)
        await response(scope, receive, send)

    async def render_graphql_ide(self, request: Request) -> Response:  # type: ignore[override]
        """GraphiQL built into the package (app/web), not Strawberry's page, whose scripts come from a CDN."""
        return web.html_page("graphiql")

    def is_websocket_origin_allowed(self, request: Any, origin: str) -> bool:
        """Pages of another origin than the server's own: in the zero set-up mode any loopback page (a console on
        another local port; app/loopback.py refuses the rest before this), else the configured ones."""
        if self.authenticator.open_access:
            return loopback_origin(origin)
        return super().is_websocket_origin_allowed(request, origin)

    def decode_json(self, data: str | bytes) -> object:
        try:
            decoded = json.loads(data)
        except json.JSONDecodeError as exc:
            raise HTTPException(400, f"the body is not JSON: {exc.msg} at position {exc.pos}") from None
        except RecursionError:
            raise HTTPException(400, "the JSON is nested too deeply") from None
        except ValueError as exc:  # undecodable bytes, an integer of thousands of digits
            raise HTTPException(400, f"the body cannot be read as JSON: {str(exc)[:200]}") from None
        if not isinstance(decoded, dict | list):
            raise HTTPException(400, "the body must be a JSON object: {\"query\": \"...\", \"variables\": {...}}")
        return decoded

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:  # type: ignore[override]
        context = Context(settings=self.settings, bus=self.bus, principal=None, request=request, response=response)
        if isinstance(request, WebSocket):
            return context  # authenticated by the connection_init payload, in on_ws_connect
        try:
            context.principal = await self.authenticator.identify(request.headers.get("authorization"))
        except DomainError as exc:
            context.auth_failure = exc.message
        return context

    async def on_ws_connect(self, context: Context) -> Any:  # type: ignore[override]
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        try:
            context.principal = await self.authenticator.identify(header if isinstance(header, str) else None)
        except DomainError as exc:
            raise ConnectionRejectionError({"code": exc.code, "message": exc.message}) from None
        return {"actor": context.principal.name}
