"""The audit log (SPEC §10): every mutation, who, what, target, when, outcome."""
from __future__ import annotations

import logging
from typing import Any

from app import clock
from app.auth import Principal
from models.settlement import AuditEntry

log = logging.getLogger("settlegraph.audit")


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
    actor = principal.name if principal else "anonymous"
    roles = ",".join(sorted(r.value for r in principal.roles)) if principal else ""
    await AuditEntry.create(
        actor=actor, roles=roles, operation=operation, target=(target or "")[:512] or None, outcome=outcome,
        detail=detail, at=clock.now(), using_db=using_db,
    )
    log.info("audit", extra={"actor": actor, "operation": operation, "target": target, "outcome": outcome})
