"""The audit log (SPEC §10): every mutation, who, what, target, when, outcome.

One protocol for every mutation. The command that makes a change builds a `Command` from the caller (its
principal), the operation and the target, and:
- writes its OK entry inside the transaction that makes the change, so one commit carries both: `run` does it
  for a command with a transaction of its own; a group commit (app/db/group_commit.py) writes the OK entries of
  its items with `insert`, in its shared transaction;
- records a refusal (a DomainError: REFUSED with its code) or a failure (FAILED), which changed nothing, in a
  statement of its own: `run` and `submitted` do it.
Entries are logged once written (`log_entry`).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from tortoise import connections
from tortoise.transactions import in_transaction

from app.auth import Principal
from app.core import clock
from app.core.errors import DomainError
from app.db import outbox
from app.db.dialect import POSTGRES, Store
from app.db.retry import retrying_deadlocks

log = logging.getLogger("settlegraph.audit")
T = TypeVar("T")

OK, REFUSED, FAILED = "OK", "REFUSED", "FAILED"
MAX_TARGET = 512


@dataclass(frozen=True, slots=True)
class Entry:
    actor: str
    roles: str
    operation: str
    target: str | None  # as stored: at most MAX_TARGET characters
    outcome: str
    detail: dict[str, Any] | None
    at: datetime
    logged_target: str | None  # as given


@dataclass(slots=True)
class Command:
    """One mutation being made, as the audit log will tell it: who, what, on what, and notes on the result."""

    caller: Principal | None
    operation: str
    target: str | None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        return self.caller.name if self.caller else "anonymous"

    def note(self, **detail: Any) -> None:
        self.detail.update(detail)

    def entry(self, outcome: str = OK, detail: dict[str, Any] | None = None) -> Entry:
        caller = self.caller
        roles = ",".join(sorted(r.value for r in caller.roles)) if caller else ""
        written = detail if detail is not None else (dict(self.detail) or None)
        return Entry(self.actor, roles, self.operation, (self.target or "")[:MAX_TARGET] or None, outcome, written,
                     clock.now(), self.target)


class AuditStore(Store):
    async def insert(self, entries: Sequence[Entry]) -> None:
        raise NotImplementedError

    @staticmethod
    def details(entries: Sequence[Entry]) -> list[str | None]:
        return [None if e.detail is None else json.dumps(e.detail, separators=(",", ":")) for e in entries]


class PostgresAuditStore(AuditStore, dialect=POSTGRES):
    async def insert(self, entries: Sequence[Entry]) -> None:
        await self.execute(
            "INSERT INTO audit_entry (actor, roles, operation, target, outcome, detail, at) "
            "SELECT a, r, o, t, c, d::jsonb, w FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
            "$5::text[], $6::text[], $7::timestamptz[]) AS e(a, r, o, t, c, d, w)",
            [[e.actor for e in entries], [e.roles for e in entries], [e.operation for e in entries],
             [e.target for e in entries], [e.outcome for e in entries], self.details(entries),
             [e.at for e in entries]],
        )


class SqliteAuditStore(AuditStore, dialect="sqlite"):
    async def insert(self, entries: Sequence[Entry]) -> None:
        await self.execute_many(
            "INSERT INTO audit_entry (actor, roles, operation, target, outcome, detail, at) VALUES (?,?,?,?,?,?,?)",
            [[e.actor, e.roles, e.operation, e.target, e.outcome, d, e.at]
             for e, d in zip(entries, self.details(entries), strict=True)],
        )


async def insert(conn: Any, entries: Sequence[Entry]) -> None:
    """Write entries inside the open transaction `conn`, in one statement (log them with log_entry once it
    committed). Every mutation's transaction ends here, so the change sets it staged for the outbox are written
    here too, as its last writes (app/db/outbox.py: that is what makes the outbox's id order commit order)."""
    await outbox.flush(conn)
    if entries:
        await AuditStore.on(conn).insert(entries)


def log_entry(entry: Entry) -> None:
    log.info("audit", extra={"actor": entry.actor, "operation": entry.operation, "target": entry.logged_target,
                             "outcome": entry.outcome})


async def record(entry: Entry) -> None:
    """Write and log one entry in a statement of its own (autocommit): a refusal or failure changed nothing."""
    await insert(connections.get("default"), [entry])
    log_entry(entry)


async def refused(command: Command, error: DomainError) -> None:
    await record(command.entry(REFUSED, {"codes": [error.code]}))


async def failed(command: Command) -> None:
    await record(command.entry(FAILED))


async def run(command: Command, work: Callable[[Any], Awaitable[T]]) -> T:
    """`work(conn)` in a transaction of its own (run again when PostgreSQL broke a deadlock), with the command's OK
    entry written in the same transaction; a refusal or failure rolls it all back and is recorded alone."""
    async def transaction() -> tuple[T, Entry]:
        async with in_transaction() as conn:
            result = await work(conn)
            written = command.entry(OK)
            await insert(conn, [written])
        return result, written

    result, written = await submitted(command, retrying_deadlocks(transaction, command.operation))
    log_entry(written)
    return result


async def submitted(command: Command, outcome: Awaitable[T]) -> T:
    """Await a command whose OK entry is written elsewhere (its own transaction, or a group's); record its
    refusal or failure."""
    try:
        return await outcome
    except DomainError as exc:
        await refused(command, exc)
        raise
    except Exception:
        await failed(command)
        raise
