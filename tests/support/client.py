"""The API clients of the tests: GraphQL over HTTP, and graphql-transport-ws over a real WebSocket."""
from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx
import websockets

from tests.support.server import key_of


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


class Subscriber:
    """A graphql-transport-ws client on a real WebSocket."""

    _ids = itertools.count(1)

    def __init__(self, ws_url: str, role: str | None = "viewer", **connect: Any) -> None:
        self.ws_url = ws_url
        self.role = role
        self.connect_options = connect
        self.ws: Any = None

    async def __aenter__(self) -> Subscriber:
        self.ws = await websockets.connect(self.ws_url, subprotocols=["graphql-transport-ws"],
                                           **self.connect_options)
        payload = {"Authorization": f"Bearer {key_of(self.role)}"} if self.role else {}
        await self.ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
        assert ack["type"] == "connection_ack", ack
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        op_id = str(next(self._ids))
        await self.ws.send(json.dumps({"id": op_id, "type": "subscribe",
                                       "payload": {"query": query, "variables": variables or {}}}))
        # The subscription is registered with the bus once the server ran the resolver's first lines; a ping
        # round trip after it is not enough to be sure, so wait a moment (no event can be expected yet).
        await asyncio.sleep(0.2)
        return op_id

    async def message(self, wait: float = 10) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), wait))  # type: ignore[no-any-return]

    async def next(self, wait: float = 10) -> dict[str, Any]:
        """The data of the next `next` message (asserting it carries no errors)."""
        message = await self.message(wait)
        assert message["type"] == "next", message
        assert not message["payload"].get("errors"), message["payload"]["errors"]
        return message["payload"]["data"]  # type: ignore[no-any-return]

    async def quiet(self, seconds: float = 0.3) -> bool:
        """True when nothing arrives for a while."""
        try:
            message = await asyncio.wait_for(self.ws.recv(), seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected message {message}")
