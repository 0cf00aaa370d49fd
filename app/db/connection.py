"""Tortoise configuration, start-up and migrations, for SQLite and PostgreSQL alike."""
from __future__ import annotations

from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.connection import get_connection
from tortoise.migrations.api import migrate as run_migrations

# One Tortoise app per concern; each keeps its own migrations package.
APPS: dict[str, dict[str, Any]] = {
    "settlement": {"models": ["models.settlement"], "migrations": "models.migrations.settlement"},
    "grants": {"models": ["models.grants"], "migrations": "models.migrations.grants"},
    "matrices": {"models": ["models.matrices"], "migrations": "models.migrations.matrices"},
}


def normalise_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgres://" + url[len("postgresql://"):]
    return url


async def _release_as_is(connection: Any) -> None:
    """asyncpg pool reset: nothing beyond asyncpg's own (it rolls back a transaction left open).

    The default reset runs one more statement on every release (advisory unlock, CLOSE ALL, UNLISTEN,
    RESET ALL) for session state that pooled connections here never hold: no SET, LISTEN (the event bus
    has its own connection), session advisory locks or cursors. Use transaction-scoped forms only.
    """


def tortoise_config(database_url: str) -> dict[str, Any]:
    url = normalise_url(database_url)
    if url.startswith(("postgres://", "asyncpg://")):
        sep = "&" if "?" in url else "?"
        if "maxsize=" not in url:
            url = f"{url}{sep}minsize=1&maxsize=20"
    elif url.startswith("sqlite://") and "busy_timeout" not in url:
        # Wait for a lock held by another process (a `migrate` beside a server) instead of failing at once.
        url = f"{url}{'&' if '?' in url else '?'}busy_timeout=5000"
    connection: str | dict[str, Any] = url
    if url.startswith(("postgres://", "asyncpg://")):
        connection = expand_db_url(url)
        connection["credentials"]["reset"] = _release_as_is
    return {
        "connections": {"default": connection},
        "apps": {label: {**app, "default_connection": "default"} for label, app in APPS.items()},
        "use_tz": True,
        "timezone": "UTC",
    }


async def migrate(database_url: str) -> None:
    """Apply pending migrations (idempotent), then close what the migration API opened."""
    await run_migrations(config=tortoise_config(database_url))
    await Tortoise.close_connections()


async def init(database_url: str) -> None:
    # Tortoise caches generated SQL per connection name; a process that re-initialises on another
    # dialect (the test suite: SQLite, then PostgreSQL) must not reuse the other dialect's statements.
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def close() -> None:
    await Tortoise.close_connections()


def connection() -> Any:
    return get_connection("default")
