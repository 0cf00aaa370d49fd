"""The one dialect layer: how SQL that differs between PostgreSQL and SQLite is written.

- `dialect_of(conn)` names a connection's dialect (POSTGRES or SQLITE); nothing else reads Tortoise's capabilities.
- `Sql(dialect)` collects a statement's values as numbered placeholders (`$n` on PostgreSQL, `?n` on SQLite):
  `p(value)`, `in_list(values)` (an IN list, short lists only), `json(value)` (a JSON text parameter).
- `stored_time(value)`: a time column as a raw query gives it (SQLite: ISO text), as an aware datetime.
- `chunks(items)`: SQLite bounds the variables of one statement; long lists go in chunks of SQLITE_CHUNK.
  PostgreSQL takes a long list as one array parameter (`= ANY($n::bigint[])`, `unnest(...)`) instead.
- `Store`: the base of every area's store of hand-written SQL. An area declares its interface as a subclass
  (`class BatchStore(Store)`), and one implementation per dialect (`class PostgresBatchStore(BatchStore,
  dialect=POSTGRES)`); `BatchStore.on(conn)` answers the implementation for the connection's dialect. The
  implementations sit beside the interface, or, when they are long, in modules named after it
  (`store.py` -> `store_postgres.py`, `store_sqlite.py`), imported on first use.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

POSTGRES = "postgres"
SQLITE = "sqlite"
SQLITE_CHUNK = 400  # bound variables per SQLite statement (its limit is far higher; statements stay short)

T = TypeVar("T")
S = TypeVar("S", bound="Store")


def dialect_of(conn: Any) -> str:
    return POSTGRES if conn.capabilities.dialect == POSTGRES else SQLITE


def stored_time(value: datetime | str) -> datetime:
    """A time column as either dialect's raw query gives it (asyncpg a datetime, SQLite ISO text), timezone-aware
    (stored times are UTC)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Sql:
    """Numbered placeholders collected with their values, in the dialect's spelling."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.values: list[Any] = []

    def p(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}" if self.dialect == POSTGRES else f"?{len(self.values)}"

    def in_list(self, values: Iterable[Any]) -> str:
        return ", ".join(self.p(v) for v in values)

    def json(self, text: str) -> str:
        """A parameter holding JSON text, stored in a JSON column."""
        mark = self.p(text)
        return f"{mark}::jsonb" if self.dialect == POSTGRES else mark


def chunks(items: Sequence[T], size: int = SQLITE_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start:start + size]


class Store:
    """Hand-written SQL of one area, run on `conn` (a Tortoise connection, usually a transaction's)."""

    dialect: ClassVar[str] = ""
    _implementations: ClassVar[dict[str, type[Store]]]

    def __init_subclass__(cls, dialect: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if dialect is None:  # an area's interface: its implementations register with it
            cls._implementations = {}
        else:
            cls.dialect = dialect
            cls._implementations[dialect] = cls

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @classmethod
    def on(cls: type[S], conn: Any) -> S:
        """The implementation of this interface for the connection's dialect."""
        dialect = dialect_of(conn)
        if dialect not in cls._implementations:
            importlib.import_module(f"{cls.__module__}_{dialect}")
        return cls._implementations[dialect](conn)  # type: ignore[return-value]

    def sql(self) -> Sql:
        return Sql(self.dialect)

    async def rows(self, sql: str, values: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return list(await self.conn.execute_query_dict(sql, list(values)))

    async def tuples(self, sql: str, values: Sequence[Any] = ()) -> list[Any]:
        _, rows = await self.conn.execute_query(sql, list(values))
        return list(rows)

    async def execute(self, sql: str, values: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows an UPDATE or DELETE touched."""
        count, _ = await self.conn.execute_query(sql, list(values))
        return int(count)

    async def execute_many(self, sql: str, values: Sequence[Sequence[Any]]) -> None:
        if values:
            await self.conn.execute_many(sql, [list(v) for v in values])
