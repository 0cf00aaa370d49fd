"""GraphQL types of the audit log (SPEC §10)."""
from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from app.audit import chain, reading
from graphql_schema.pagination import PageInfo
from models.settlement import AuditEntry as EntryRow


@strawberry.type(description="One mutation as the audit log keeps it: who, what, on what, when, how it ended.")
class AuditEntry:
    id: strawberry.ID
    at: datetime
    actor: str
    role: str = strawberry.field(description="The caller's roles, comma separated.")
    operation: str
    target: str | None
    outcome: str = strawberry.field(description="OK, REFUSED or FAILED.")
    code: str | None = strawberry.field(description="The stable code of a refusal.")
    detail: JSON | None

    @classmethod
    def of(cls, row: EntryRow) -> AuditEntry:
        detail = row.detail if isinstance(row.detail, dict) else None
        codes = detail.get("codes") if detail else None
        return cls(id=strawberry.ID(str(row.id)), at=row.at, actor=row.actor, role=row.roles, operation=row.operation,
                   target=row.target, outcome=row.outcome, code=codes[0] if codes else None,
                   detail=JSON(detail) if detail is not None else None)


@strawberry.input
class AuditFilter:
    actor: str | None = None
    operation: str | None = None
    target: str | None = None
    outcome: str | None = None
    from_: datetime | None = strawberry.field(name="from", default=None, description="Inclusive.")
    to: datetime | None = strawberry.field(default=None, description="Exclusive.")

    def to_app(self) -> reading.AuditFilter:
        return reading.AuditFilter(self.actor, self.operation, self.target, self.outcome, self.from_, self.to)


@strawberry.type
class AuditEntryEdge:
    cursor: str
    node: AuditEntry


@strawberry.type
class AuditEntryConnection:
    total_count: int
    page_info: PageInfo
    edges: list[AuditEntryEdge]


@strawberry.type(description="The hash chain of the audit log, recomputed from its entries.")
class AuditVerification:
    ok: bool
    entries_checked: int
    first_broken_entry_id: strawberry.ID | None = strawberry.field(
        description="The first sealed entry changed, removed, inserted or reordered; null when the chain holds.")
    sealed_through_entry_id: strawberry.ID | None = strawberry.field(
        description="Entries up to this id are sealed; later ones wait for the next seal.")

    @classmethod
    def of(cls, found: chain.Verification) -> AuditVerification:
        def as_id(value: int | None) -> strawberry.ID | None:
            return strawberry.ID(str(value)) if value is not None else None

        return cls(ok=found.ok, entries_checked=found.entries_checked,
                   first_broken_entry_id=as_id(found.first_broken_entry_id),
                   sealed_through_entry_id=as_id(found.sealed_through_entry_id))
