"""Operations the settlement migrations share (a module whose name starts with _ is not a migration)."""
from __future__ import annotations

from typing import Any

from tortoise.migrations import operations as ops


class RunOnPostgres(ops.RunSQL):
    """SQL for PostgreSQL only (storage parameters, dropping a constraint); nothing on SQLite."""

    async def database_forward(self, app_label: str, old_state: Any, new_state: Any, state_editor: Any = None) -> None:
        if state_editor is not None and state_editor.client.capabilities.dialect == "postgres":
            await super().database_forward(app_label, old_state, new_state, state_editor)

    async def database_backward(self, app_label: str, old_state: Any, new_state: Any, state_editor: Any = None) -> None:
        if state_editor is not None and state_editor.client.capabilities.dialect == "postgres":
            await super().database_backward(app_label, old_state, new_state, state_editor)


class AlterFieldState(ops.AlterField):
    """The field's new definition in the migration state only; the migration changes the database itself
    (Tortoise's SQLite AlterField rebuilds the table and loses its other indexes and unique constraints)."""

    async def database_forward(self, app_label: str, old_state: Any, new_state: Any, state_editor: Any = None) -> None:
        return None

    async def database_backward(self, app_label: str, old_state: Any, new_state: Any, state_editor: Any = None) -> None:
        return None
