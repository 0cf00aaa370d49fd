"""The audit log (SPEC §10): every mutation, who, what, target, when, outcome."""
from __future__ import annotations

import logging
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
    actor = principal.name if principal else "anonymous"
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
