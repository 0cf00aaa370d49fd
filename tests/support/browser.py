"""The system's Chromium driven by Playwright (no browser download is possible here), offline: every request to
an address other than the loopback one is refused and remembered, so a page that needs the internet fails."""
from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.loopback import is_loopback_name

CHROMIUM = os.environ.get("SETTLEGRAPH_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTEFACTS = Path(__file__).resolve().parent.parent / "artefacts"


def chromium_or_skip() -> None:
    """In CI a missing browser fails the run (.ci/run installs it); elsewhere the browser tests are skipped."""
    missing = None
    if not Path(CHROMIUM).exists():
        missing = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            missing = "playwright is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run in CI: {missing}")
        pytest.skip(f"browser tests need Chromium: {missing}")


def loopback(url: str) -> bool:
    """A request the page may make with the internet blocked: to this machine, or to no network at all."""
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or is_loopback_name(parts.hostname or "")


@dataclass
class Tab:
    """One page with what went wrong in it: requests that tried to leave the machine, script errors."""

    page: Any
    base_url: str
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def open(self, path: str) -> None:
        await self.page.goto(self.base_url + path)

    async def screenshot(self, name: str) -> None:
        ARTEFACTS.mkdir(exist_ok=True)
        await self.page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)

    def assert_clean(self) -> None:
        assert self.blocked == [], f"the page asked the internet for {self.blocked}"
        assert self.errors == [], f"script errors: {self.errors}"


class Browser:
    def __init__(self, browser: Any) -> None:
        self.browser = browser

    @asynccontextmanager
    async def tab(self, base_url: str) -> AsyncIterator[Tab]:
        """A fresh browser context (its own sessionStorage: another user) with one page."""
        context = await self.browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        page = await context.new_page()
        tab = Tab(page, base_url)

        async def guard(route: Any) -> None:
            if loopback(route.request.url):
                await route.continue_()
            else:
                tab.blocked.append(route.request.url)
                await route.abort("internetdisconnected")

        await context.route("**/*", guard)
        page.on("pageerror", lambda exc: tab.errors.append(str(exc)))
        try:
            yield tab
        finally:
            await context.close()


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield Browser(browser)
        finally:
            await browser.close()


async def sign_in(tab: Tab, key: str, path: str = "/console") -> None:
    await tab.open(path)
    await tab.page.fill("input[name=credential]", key)
    await tab.page.click("form:has(input[name=credential]) button[type=submit]")
