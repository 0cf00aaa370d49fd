"""Audit every mutation: wrap its body, and the outcome (OK, REFUSED with codes, FAILED) is logged."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from strawberry.types import Info

from app import audit

P = TypeVar("P")


class AuditScope:
    def __init__(self) -> None:
        self.outcome = "OK"
        self.detail: dict[str, Any] | None = None

    def refused(self, payload: P) -> P:
        """Mark the mutation refused with the payload's userErrors codes, and hand the payload back."""
        codes = sorted({e.code for e in getattr(payload, "user_errors", [])})
        self.outcome = "REFUSED"
        self.detail = {"codes": codes}
        return payload

    def note(self, **detail: Any) -> None:
        self.detail = {**(self.detail or {}), **detail}


@asynccontextmanager
async def audited(info: Info, operation: str, target: str | None) -> AsyncIterator[AuditScope]:
    scope = AuditScope()
    try:
        yield scope
    except BaseException:
        scope.outcome = "FAILED"
        await audit.record(info.context.principal, operation, target, scope.outcome, scope.detail)
        raise
    await audit.record(info.context.principal, operation, target, scope.outcome, scope.detail)
