"""The outbox (SPEC §13): change sets written in the transaction that makes them, for a relay to publish.

Knows no domain: an area stages change sets on the open transaction's connection (`stage`, or `staged` to extend
the last one), and `flush` writes them as the transaction's last writes. app/audit.insert calls it: every
mutation's transaction ends by writing its audit entries (app/audit/__init__.py), so that is the one place where
a transaction's change sets become final, whichever command made them.

Commit order (PostgreSQL). Ids drawn from a sequence are not commit order: a transaction that drew id 10 may commit
after the one that drew id 11, and a relay that had published 11 would then publish 10 late, or, reading from a
cursor, never. So `flush` takes a transaction-level advisory lock right before its INSERT, which is (with the audit
entries) the last statement of the transaction: outbox writers draw their ids one transaction at a time, and each
holds the lock until it committed (or rolled back). Hence id order is commit order, and once the relay sees id N
every smaller id is committed or gone for good. The lock is held for about a commit's time, and only by
transactions that changed something that is published (recording takes it only when it opens a batch). SQLite
has one writer at a time: id order is commit order already.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.core import clock
from app.db.dialect import POSTGRES, SQLITE, Store, chunks, stored_time

# pg_advisory_xact_lock keys: outbox writers (commit order) and the one relay.
WRITE_LOCK = 0x5E77_0B01
RELAY_LOCK = 0x5E77_0B02
_ATTRIBUTE = "_settlegraph_outbox"


@dataclass(slots=True)
class ChangeSet:
    """One outbox row being built: `body` is shared by every id in `ids` (an empty list: a single event)."""

    kind: str
    key: tuple[Any, ...]
    body: dict[str, Any]
    ids: list[int] = field(default_factory=list)

    def payload(self) -> str:
        body = {**self.body, "ids": self.ids} if self.ids else self.body
        return json.dumps(body, separators=(",", ":"), default=str)


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    kind: str
    payload: dict[str, Any]
    written: datetime

    @property
    def key(self) -> str:
        """The row's identity for the broker's duplicate detection: its id and when it was written. Ids alone start
        again after a database is restored from a backup (or its identities reset), and the broker would drop the
        new rows' messages as repeats of old ones for its whole duplicate window."""
        return f"{self.id}@{round(self.written.timestamp() * 1_000_000)}"


def staged(conn: Any) -> list[ChangeSet]:
    """The change sets staged so far in the transaction of `conn` (append to it, or extend its last one)."""
    found: list[ChangeSet] | None = conn.__dict__.get(_ATTRIBUTE)
    if found is None:
        found = []
        setattr(conn, _ATTRIBUTE, found)
    return found


def stage(conn: Any, kind: str, body: dict[str, Any]) -> None:
    staged(conn).append(ChangeSet(kind, (), body))


async def flush(conn: Any) -> None:
    """Write the change sets staged on `conn`, as the last writes of its transaction (see the module's notes)."""
    sets: list[ChangeSet] | None = conn.__dict__.pop(_ATTRIBUTE, None)
    if sets:
        await OutboxStore.on(conn).insert([(s.kind, s.payload()) for s in sets], clock.now())


class OutboxStore(Store):
    async def insert(self, rows: Sequence[tuple[str, str]], at: datetime) -> None:
        raise NotImplementedError

    async def take_relay_lock(self) -> bool:
        """Whether this transaction is the one relay (PostgreSQL; SQLite serves one process)."""
        return True

    async def first(self, limit: int) -> list[Row]:
        rows = await self.tuples(f"SELECT id, kind, payload, created_at FROM outbox ORDER BY id LIMIT {int(limit)}")
        return [Row(int(r[0]), r[1], json.loads(r[2]), stored_time(r[3])) for r in rows]

    async def delete(self, ids: Sequence[int]) -> None:
        raise NotImplementedError

    async def backlog(self) -> int:
        return int((await self.tuples("SELECT COUNT(*) FROM outbox"))[0][0])


class PostgresOutboxStore(OutboxStore, dialect=POSTGRES):
    async def insert(self, rows: Sequence[tuple[str, str]], at: datetime) -> None:
        await self.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        await self.execute(
            "INSERT INTO outbox (kind, payload, created_at) SELECT k, p, $3 FROM unnest($1::text[], $2::text[]) "
            "WITH ORDINALITY AS o(k, p, n) ORDER BY n",
            [[r[0] for r in rows], [r[1] for r in rows], at])

    async def take_relay_lock(self) -> bool:
        return bool((await self.tuples(f"SELECT pg_try_advisory_xact_lock({RELAY_LOCK})"))[0][0])

    async def delete(self, ids: Sequence[int]) -> None:
        await self.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [list(ids)])


class SqliteOutboxStore(OutboxStore, dialect=SQLITE):
    async def insert(self, rows: Sequence[tuple[str, str]], at: datetime) -> None:
        await self.execute_many("INSERT INTO outbox (kind, payload, created_at) VALUES (?, ?, ?)",
                                [[kind, payload, at] for kind, payload in rows])

    async def delete(self, ids: Sequence[int]) -> None:
        for chunk in chunks(ids):
            await self.execute(f"DELETE FROM outbox WHERE id IN ({', '.join('?' * len(chunk))})", list(chunk))

