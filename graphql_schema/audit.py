"""Audit every mutation: wrap its body, and the outcome (OK, REFUSED with codes, FAILED) is logged."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from strawberry.types import Info

from app import audit

P = TypeVar("P")


class AuditScope:
    def __init__(self, info: Info, operation: str, target: str | None) -> None:
        self.info, self.operation, self.target = info, operation, target
        self.outcome = "OK"
        self.detail: dict[str, Any] | None = None
        self.recorded = False

    def refused(self, payload: P) -> P:
        """Mark the mutation refused with the payload's userErrors codes, and hand the payload back."""
        codes = sorted({e.code for e in getattr(payload, "user_errors", [])})
        self.outcome = "REFUSED"
        self.detail = {"codes": codes}
        return payload

    def note(self, **detail: Any) -> None:
        self.detail = {**(self.detail or {}), **detail}

    def entry(self) -> audit.Entry:
        """The entry, for a body that writes it inside its own transaction (app.audit.insert), so one commit
        carries both. Only for a body that returns normally once that transaction committed: if anything fails
        after this, the entry rolls back with the transaction and `audited` writes a FAILED one of its own."""
        self.recorded = True
        return audit.entry(self.info.context.principal, self.operation, self.target, self.outcome, self.detail)


@asynccontextmanager
async def audited(info: Info, operation: str, target: str | None) -> AsyncIterator[AuditScope]:
    scope = AuditScope(info, operation, target)
    try:
        yield scope
    except BaseException:
        scope.outcome = "FAILED"
        await audit.record(info.context.principal, operation, target, scope.outcome, scope.detail)
        raise
    if not scope.recorded:
        await audit.record(info.context.principal, operation, target, scope.outcome, scope.detail)
