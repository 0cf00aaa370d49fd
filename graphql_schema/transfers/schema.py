"""recordTransfers and the transfer query."""
from __future__ import annotations

import strawberry

from app.batches import recording
from app.db.columns import fits
from graphql_schema.context import Info
from graphql_schema.errors import mutation
from graphql_schema.permissions import IsIngest, IsViewer, sees
from graphql_schema.transfers.types import RecordTransfersPayload, Transfer, TransferInput
from models.settlement import Transfer as TransferRow


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsViewer])
    async def transfer(self, info: Info, transfer_id: str) -> Transfer | None:
        if not fits(TransferRow, "transfer_id", transfer_id):
            return None
        row = await TransferRow.get_or_none(transfer_id=transfer_id)
        return Transfer.of(row) if row and sees(info, row.payer_id, row.payee_id) else None


@strawberry.type
class Mutation:
    @mutation(permission_classes=[IsIngest], description="Record up to 5,000 cleared transfers.")
    async def record_transfers(self, info: Info, transfers: list[TransferInput]) -> RecordTransfersPayload:
        result = await recording.record_transfers([t.to_app() for t in transfers], info.context.principal)
        info.context.published(result.status_changes, result.touched_batch_ids)
        return RecordTransfersPayload.of(result)
