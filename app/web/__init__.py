"""The browser pages settlegraph serves itself (SPEC §14): GraphiQL and the operator console, and their assets.

They are built from `frontend/` (`npm ci && npm run build`) into `static/`, which is committed and shipped in
the package, so a machine without Node or internet access serves them; `.ci/run` rebuilds them and checks that
the build reproduces the committed files.
"""
from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).resolve().parent / "static"


def page(name: str) -> str:
    # Read on each request (a few hundred bytes): a rebuild under a running server names new asset files.
    path = STATIC / f"{name}.html"
    if not path.exists():
        return (f"<!doctype html><title>settlegraph</title><p>The {name} page has not been built: run "
                "<code>npm ci &amp;&amp; npm run build</code> in <code>frontend/</code>.</p>")
    return path.read_text(encoding="utf-8")


def html_page(name: str) -> HTMLResponse:
    return HTMLResponse(page(name), headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


class Assets(StaticFiles):
    """The built scripts and styles: their names carry a hash of their content, so a browser may keep them."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


async def console(request: Request) -> Response:
    return html_page("console")


def routes() -> list[Route | Mount]:
    return [Route("/console", console, methods=["GET"]), Route("/console/", console, methods=["GET"]),
            Mount("/assets", Assets(directory=STATIC / "assets", check_dir=False), name="assets")]
