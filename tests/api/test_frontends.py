"""Other admin frontends (RUNNING.md): pages of the origins in SETTLEGRAPH_CORS_ORIGINS may call the API from a
browser (HTTP and WebSocket), and tokens of an OIDC provider are checked against its published, rotating keys
(SETTLEGRAPH_JWT_JWKS_URL). Real `settlegraph serve` processes; a local JWKS endpoint."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from app.auth import JWKS_COOLDOWN
from tests.support.processes import Process, serve, stop
from tests.support.server import free_port

CONSOLE = "https://console.hub.example"


class Provider:
    """An OIDC provider's JWKS endpoint on this machine, whose keys can be rotated."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.published: list[str] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"keys": [{**json.loads(RSAAlgorithm.to_jwk(provider.keys[kid].public_key())),
                                             "kid": kid, "use": "sig", "alg": "RS256"}
                                            for kid in provider.published]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks"

    def publish(self, kid: str) -> None:
        self.keys.setdefault(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))
        self.published = [kid]

    def token(self, kid: str, **claims: Any) -> str:
        self.keys.setdefault(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return jwt.encode({"sub": "oidc-user", "roles": ["VIEWER"], "exp": int(time.time()) + 300, **claims},
                          self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    made = Provider()
    thread = threading.Thread(target=made.server.serve_forever, daemon=True)
    thread.start()
    yield made
    made.server.shutdown()


@pytest.fixture(scope="module")
async def frontend_server(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Process]:
    provider.publish("key-1")
    database = f"sqlite://{tmp_path_factory.mktemp('frontends') / 'settlegraph.db'}"
    process = await serve(database, SETTLEGRAPH_CORS_ORIGINS=CONSOLE, SETTLEGRAPH_JWT_JWKS_URL=provider.url)
    try:
        yield process
    finally:
        await stop(process)


async def _ask(process: Process, token: str) -> dict:
    async with httpx.AsyncClient(base_url=process.base_url) as http:
        return (await http.post("/graphql", json={"query": "{ settlementModels { name } }"},
                                headers={"Authorization": f"Bearer {token}"})).json()


async def test_tokens_of_the_provider_are_accepted_across_a_key_rotation(frontend_server, provider):
    assert (await _ask(frontend_server, provider.token("key-1")))["data"]["settlementModels"]
    stranger = await _ask(frontend_server, provider.token("key-unpublished"))
    assert stranger["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    provider.publish("key-2")  # the provider rotates: key-1 is gone, key-2 signs from now on
    await asyncio.sleep(JWKS_COOLDOWN + 0.5)  # the client fetches the keys again at most this often
    assert (await _ask(frontend_server, provider.token("key-2")))["data"]["settlementModels"]
    assert (await _ask(frontend_server, provider.token("key-1")))["errors"][0]["extensions"]["code"] == \
        "UNAUTHENTICATED"
    viewer = await _ask(frontend_server, provider.token("key-2", roles=["VIEWER"]))
    assert viewer["data"]  # the role comes from the token's roles claim, as with a static key
    mutation = "mutation { closeBatch(ref: {id: \"1\"}) { userErrors { code } } }"
    async with httpx.AsyncClient(base_url=frontend_server.base_url) as http:
        body = (await http.post("/graphql", json={"query": mutation},
                                headers={"Authorization": f"Bearer {provider.token('key-2')}"})).json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_pages_of_the_configured_origins_may_call_the_api(frontend_server, provider):
    async with httpx.AsyncClient(base_url=frontend_server.base_url) as http:
        preflight = await http.options("/graphql", headers={
            "Origin": CONSOLE, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == CONSOLE
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        answer = await http.post("/graphql", json={"query": "{ __typename }"},
                                 headers={"Origin": CONSOLE, "Authorization": "Bearer k-viewer"})
        assert answer.headers["access-control-allow-origin"] == CONSOLE and answer.json()["data"]
        other = await http.post("/graphql", json={"query": "{ __typename }"},
                                headers={"Origin": "https://elsewhere.example", "Authorization": "Bearer k-viewer"})
        assert "access-control-allow-origin" not in other.headers
    url = frontend_server.base_url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"],
                                  additional_headers={"Origin": CONSOLE}) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer k-viewer"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"],
                                      additional_headers={"Origin": "https://elsewhere.example"}):
            pass
