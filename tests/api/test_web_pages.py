"""GraphiQL and the console are served whole by settlegraph (SPEC §14): every script and style a page names is on
this server, answers 200 with its type, and may be cached (its name is a hash of its content). No browser needed."""
from __future__ import annotations

import re

import pytest

from app import web

REFERENCE = re.compile(r'(?:src|href)="([^"]+)"')


def references(html: str) -> list[str]:
    return [r for r in REFERENCE.findall(html) if r != "data:,"]  # data:, is the empty favicon (no request)


@pytest.mark.parametrize(("path", "headers"), [("/graphql", {"Accept": "text/html"}), ("/console", {})])
async def test_pages_name_only_assets_this_server_serves(gql, path, headers):
    page = await gql.http.get(path, headers=headers)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "cdn" not in page.text.lower() and "//" not in "".join(references(page.text))
    assets = references(page.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert asset.startswith("/assets/"), asset
        answer = await gql.http.get(asset)
        assert answer.status_code == 200, asset
        assert answer.headers["content-type"].split(";")[0] in ("text/javascript", "text/css"), asset
        assert "immutable" in answer.headers["cache-control"]


async def test_the_console_page_is_the_built_one(gql):
    page = await gql.http.get("/console")
    assert page.text == (web.STATIC / "console.html").read_text(encoding="utf-8")
    assert (await gql.http.get("/assets/no-such-file.js")).status_code == 404


def test_every_asset_is_shipped_in_the_package() -> None:
    """pyproject's package-data must cover what the build produced, or `pip install` ships pages without scripts."""
    built = sorted(p.relative_to(web.STATIC).as_posix() for p in web.STATIC.rglob("*") if p.is_file())
    assert "console.html" in built and "graphiql.html" in built
    assert all(re.fullmatch(r"[\w.-]+\.html|assets/[\w.-]+", name) for name in built), built
