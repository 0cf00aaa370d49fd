"""The audit log in the API (SPEC §10): for ADMIN and AUDITOR."""
from __future__ import annotations

import strawberry

from app.audit import chain, reading
from graphql_schema.audit.types import AuditEntry, AuditEntryConnection, AuditEntryEdge, AuditFilter, AuditVerification
from graphql_schema.pagination import page_of
from graphql_schema.permissions import IsAuditor


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsAuditor], description="Every mutation, oldest first, in pages.")
    async def audit_log(self, filter: AuditFilter | None = None, first: int | None = 50,
                        after: str | None = None) -> AuditEntryConnection:
        page = await page_of(reading.entries(filter.to_app() if filter else None), first, after)
        return AuditEntryConnection(total_count=page.total_count, page_info=page.page_info,
                                    edges=[AuditEntryEdge(cursor=cursor, node=AuditEntry.of(row))
                                           for row, cursor in page.cursors()])

    @strawberry.field(permission_classes=[IsAuditor],
                      description="Recompute the audit log's hash chain; names the first entry that breaks it.")
    async def audit_verification(self) -> AuditVerification:
        return AuditVerification.of(await chain.verify())
