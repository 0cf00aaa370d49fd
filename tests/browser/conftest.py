"""One Chromium for the browser tests, in the test session's event loop (the server under test runs there too)."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.browser import Browser, chromium, chromium_or_skip


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    chromium_or_skip()
    async with chromium() as launched:
        yield launched
