"""recordTransfers and the transfer query."""
from __future__ import annotations

import strawberry
from strawberry.types import Info

from app import audit as app_audit
from app import recording
from app.errors import DomainError
from graphql_schema.audit import audited
from graphql_schema.enums import TransferOutcome
from graphql_schema.errors import UserError
from graphql_schema.permissions import IsIngest, IsViewer
from graphql_schema.transfers.types import RecordTransfersPayload, Transfer, TransferInput, TransferResult
from models.settlement import Transfer as TransferRow


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsViewer])
    async def transfer(self, transfer_id: str) -> Transfer | None:
        row = await TransferRow.get_or_none(transfer_id=transfer_id)
        return Transfer(row=row) if row else None


AUDIT_COUNTS = (("recorded", "RECORDED"), ("duplicates", "DUPLICATE"), ("rejected", "REJECTED"))


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=[IsIngest], description="Record up to 5,000 cleared transfers.")
    async def record_transfers(self, info: Info, transfers: list[TransferInput]) -> RecordTransfersPayload:
        async with audited(info, "recordTransfers", f"{len(transfers)} transfer(s)") as audit:

            def audit_entry(result: recording.RecordingResult) -> app_audit.Entry:
                audit.note(**{key: result.count(o) for key, o in AUDIT_COUNTS})
                return audit.entry()

            try:
                result = await recording.record_transfers([t.to_app() for t in transfers], info.context.actor,
                                                          audit_entry=audit_entry)
            except DomainError as exc:
                return audit.refused(RecordTransfersPayload(
                    recorded=0, duplicates=0, rejected=len(transfers), results=[], user_errors=[UserError.of(exc)]
                ))
            info.context.publish_status_changes(result.status_changes)
            info.context.publish_batch_totals(result.touched_batch_ids)
            recorded, duplicates, rejected = (result.count(o) for _, o in AUDIT_COUNTS)
            return RecordTransfersPayload(
                recorded=recorded,
                duplicates=duplicates,
                rejected=rejected,
                results=[
                    TransferResult(
                        transfer_id=o.transfer_id,
                        outcome=TransferOutcome(o.outcome),
                        batch_id=o.batch_id,
                        error=UserError.of(o.error) if o.error else None,
                    )
                    for o in result.outcomes
                ],
            )
