"""Reading the audit log (SPEC §10): filtered, in id order, for ADMIN and AUDITOR callers."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.queryset import QuerySet

from app.db.columns import fits
from models.settlement import AuditEntry


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    operation: str | None = None
    target: str | None = None
    outcome: str | None = None
    at_from: datetime | None = None  # inclusive
    at_to: datetime | None = None  # exclusive


def entries(flt: AuditFilter | None) -> QuerySet[AuditEntry]:
    query = AuditEntry.all()
    if flt is None:
        return query
    for column, value in (("actor", flt.actor), ("operation", flt.operation), ("target", flt.target),
                          ("outcome", flt.outcome)):
        if value is not None:  # a value longer than its column was never written: nothing matches
            query = query.filter(**{column: value}) if fits(AuditEntry, column, value) else query.filter(id=0)
    if flt.at_from is not None:
        query = query.filter(at__gte=flt.at_from)
    if flt.at_to is not None:
        query = query.filter(at__lt=flt.at_to)
    return query
