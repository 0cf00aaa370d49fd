"""The zero set-up mode (no credentials: every caller is ADMIN) answers only what a local client sends (SPEC §10).

A page on another site could otherwise reach the server through DNS rebinding: its name resolves to 127.0.0.1,
the browser sends `Host: evil.example`, and the page drives an ADMIN-for-everyone API. So in that mode every
HTTP request and WebSocket handshake must name a loopback host (`localhost`, `127.0.0.1`, `[::1]`, any port),
and a WebSocket handshake from a browser must come from a loopback origin. With credentials configured, nothing
here applies: callers prove who they are.
"""
from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

Scope = dict[str, Any]


def is_loopback_name(host: str) -> bool:
    """Whether a host name (without port) is this machine's loopback: localhost, 127.0.0.0/8, ::1."""
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_of(header: str) -> str:
    """The host part of a Host header value ("127.0.0.1:8000" -> "127.0.0.1", "[::1]:8000" -> "[::1]")."""
    header = header.strip()
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def loopback_origin(origin: str) -> bool:
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        return False
    return host is not None and is_loopback_name(host)


class LoopbackOnly:
    """ASGI middleware: refuse requests and handshakes that are not addressed to (and, for WebSockets from a
    browser, sent from) a loopback name."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        why = None
        if not is_loopback_name(host_of(headers.get("host", ""))):
            why = "this server runs without credentials and answers only requests addressed to localhost"
        elif scope["type"] == "websocket" and "origin" in headers and not loopback_origin(headers["origin"]):
            why = "this server runs without credentials and accepts WebSockets only from localhost pages"
        if why is None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # refuse the handshake (HTTP 403 through the ASGI denial response)
            await send({"type": "websocket.close", "code": 4403, "reason": why[:120]})
            return
        body = json.dumps({"errors": [{"message": why, "extensions": {"code": "FORBIDDEN"}}]}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
