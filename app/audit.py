"""The audit log (SPEC §10): every mutation, who, what, target, when, outcome.

An entry is built (entry), written inside the transaction that makes the change, with the other entries of
its group in one statement (insert), and logged once that transaction committed (log_entry). A refusal or
failure, which changed nothing, is recorded on its own (record)."""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise import connections

from app import clock
from app.auth import Principal

log = logging.getLogger("settlegraph.audit")


@dataclass(frozen=True, slots=True)
class Entry:
    actor: str
    roles: str
    operation: str
    target: str | None  # as stored: at most 512 characters
    outcome: str
    detail: dict[str, Any] | None
    at: datetime
    logged_target: str | None  # as given


def entry(principal: Principal | None, operation: str, target: str | None, outcome: str,
          detail: dict[str, Any] | None = None) -> Entry:
    actor = principal.name if principal else "anonymous"
    roles = ",".join(sorted(r.value for r in principal.roles)) if principal else ""
    return Entry(actor, roles, operation, (target or "")[:512] or None, outcome, detail, clock.now(), target)


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
    log.info("audit", extra={"actor": entry.actor, "operation": entry.operation, "target": entry.logged_target,
                             "outcome": entry.outcome})


async def record(principal: Principal | None, operation: str, target: str | None, outcome: str,
                 detail: dict[str, Any] | None = None) -> None:
    """Write and log one entry in a statement of its own (autocommit)."""
    written = entry(principal, operation, target, outcome, detail)
    await insert(connections.get("default"), [written])
    log_entry(written)
