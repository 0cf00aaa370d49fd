"""What the database holds, for tests that check that a refusal wrote nothing."""
from __future__ import annotations

from typing import Any

from tortoise import Tortoise

# The audit log records refusals by design (SPEC §10); everything else must stay as it was.
WRITTEN_BY_REFUSALS = frozenset({"audit_entry"})


async def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (but the audit log), in a comparable form."""
    conn = Tortoise.get_connection("default")
    tables = sorted({model._meta.db_table for app in Tortoise.apps.values() for model in app.values()}
                    - WRITTEN_BY_REFUSALS)
    found: dict[str, list[tuple[Any, ...]]] = {}
    for table in tables:
        rows = await conn.execute_query_dict(f"SELECT * FROM {table}")
        found[table] = sorted(tuple(sorted((k, str(v)) for k, v in row.items())) for row in rows)
    return found
