"""The audit log (SPEC §10): every mutation, who, what, target, when, outcome."""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app import clock
from app.auth import Principal
from models.settlement import AuditEntry

log = logging.getLogger("settlegraph.audit")


def columns(principal: Principal | None, operation: str, target: str | None) -> tuple[str, str, str, str | None]:
    """actor, roles, operation and target as an audit entry stores them (hand-written SQL writes them too)."""
    actor = principal.name if principal else "anonymous"
    roles = ",".join(sorted(r.value for r in principal.roles)) if principal else ""
    return actor, roles, operation, (target or "")[:512] or None


def logged(principal: Principal | None, operation: str, target: str | None, outcome: str) -> None:
    """The log line of an entry, once it is committed."""
    _log_line(principal.name if principal else "anonymous", operation, target, outcome)


def _log_line(actor: str, operation: str, target: str | None, outcome: str) -> None:
    log.info("audit", extra={"actor": actor, "operation": operation, "target": target, "outcome": outcome})


async def record(
    principal: Principal | None,
    operation: str,
    target: str | None,
    outcome: str,
    detail: dict[str, Any] | None = None,
    *,
    using_db: Any = None,
) -> None:
    """Write one entry; `using_db`: inside that open transaction instead of a transaction of its own."""
    actor, roles, operation, stored_target = columns(principal, operation, target)
    await AuditEntry.create(actor=actor, roles=roles, operation=operation, target=stored_target, outcome=outcome,
                            detail=detail, at=clock.now(), using_db=using_db)
    logged(principal, operation, target, outcome)


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry, ready to be written with others in one statement (insert)."""

    actor: str
    roles: str
    operation: str
    target: str | None
    outcome: str
    detail: dict[str, Any] | None
    at: datetime
    logged_target: str | None


def entry(principal: Principal | None, operation: str, target: str | None, outcome: str,
          detail: dict[str, Any] | None = None) -> Entry:
    actor, roles, operation, stored_target = columns(principal, operation, target)
    return Entry(actor, roles, operation, stored_target, outcome, detail, clock.now(), target)


async def insert(conn: Any, entries: Sequence[Entry]) -> None:
    """Write entries inside the open transaction `conn`, in one statement (log them with log_entry once it
    committed)."""
    details = [None if e.detail is None else json.dumps(e.detail, separators=(",", ":")) for e in entries]
    if conn.capabilities.dialect == "postgres":
        await conn.execute_query(
            "INSERT INTO audit_entry (actor, roles, operation, target, outcome, detail, at) "
            "SELECT a, r, o, t, c, d::jsonb, w FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
            "$5::text[], $6::text[], $7::timestamptz[]) AS e(a, r, o, t, c, d, w)",
            [[e.actor for e in entries], [e.roles for e in entries], [e.operation for e in entries],
             [e.target for e in entries], [e.outcome for e in entries], details, [e.at for e in entries]],
        )
        return
    await conn.execute_many(
        "INSERT INTO audit_entry (actor, roles, operation, target, outcome, detail, at) VALUES (?,?,?,?,?,?,?)",
        [[e.actor, e.roles, e.operation, e.target, e.outcome, d, e.at] for e, d in zip(entries, details, strict=True)],
    )


def log_entry(entry: Entry) -> None:
    _log_line(entry.actor, entry.operation, entry.logged_target, entry.outcome)
