"""GraphQL types of transfers and of recording them (SPEC §4)."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.types.arguments import InputContext
from tortoise.expressions import Q

from app.batches.recording import COUNTS, RecordingResult
from app.batches.transfers import TransferRequest
from graphql_schema.common import Attribute, AttributeInput, attributes_of
from graphql_schema.context import Info
from graphql_schema.enums import TransferOutcome
from graphql_schema.errors import UserError
from graphql_schema.pagination import PageInfo, page_of
from graphql_schema.scalars import Amount, amount
from models.settlement import Transfer as TransferRow

if TYPE_CHECKING:
    from graphql_schema.batches.types import Batch


@strawberry.type
class Transfer:
    transfer_id: str
    payer_id: str
    payee_id: str
    amount: Amount
    currency: str
    committed_at: datetime
    attributes: list[Attribute]
    refund_of: str | None
    batch_id: strawberry.Private[int]

    @classmethod
    def of(cls, row: TransferRow) -> Transfer:
        return cls(transfer_id=row.transfer_id, payer_id=row.payer_id, payee_id=row.payee_id,
                   amount=amount(row.amount, row.currency), currency=row.currency, committed_at=row.committed_at,
                   attributes=attributes_of(row.attributes), refund_of=row.refund_of,
                   batch_id=row.batch_id)  # type: ignore[attr-defined]

    @strawberry.field
    async def batch(self, info: Info) -> Annotated[Batch, strawberry.lazy("graphql_schema.batches.types")] | None:
        from graphql_schema.batches.types import load_batch

        return await load_batch(info, self.batch_id)


@strawberry.type
class TransferEdge:
    node: Transfer
    cursor: str


@strawberry.type
class TransferConnection:
    edges: list[TransferEdge]
    page_info: PageInfo
    total_count: int


async def transfer_connection(batch_id: int, first: int | None, after: str | None,
                              participant: str | None = None) -> TransferConnection:
    """A page of the batch's transfers; only those `participant` pays or receives, when given (SPEC §10)."""
    query = TransferRow.filter(batch_id=batch_id)
    if participant is not None:
        query = query.filter(Q(payer_id=participant) | Q(payee_id=participant))
    page = await page_of(query, first, after)
    return TransferConnection(
        edges=[TransferEdge(node=Transfer.of(row), cursor=cursor) for row, cursor in page.cursors()],
        page_info=page.page_info, total_count=page.total_count,
    )


@strawberry.input
class TransferInput:
    transfer_id: str
    payer_id: str
    payee_id: str
    amount: Amount
    currency: str
    committed_at: datetime
    settlement_model: str | None = None
    attributes: list[AttributeInput] | None = None
    refund_of: str | None = None

    def to_app(self) -> TransferRequest:
        return TransferRequest(
            transfer_id=self.transfer_id,
            payer_id=self.payer_id,
            payee_id=self.payee_id,
            amount=self.amount,
            currency=self.currency,
            committed_at=self.committed_at,
            settlement_model=self.settlement_model,
            attributes=[(a.key, a.value) for a in self.attributes] if self.attributes else None,
            refund_of=self.refund_of,
        )


def _transfer_input(cls: type[TransferInput], value: Mapping[str, Any], context: InputContext) -> TransferInput:
    """TransferInput straight from the value graphql-core coerced (scalars parsed, defaults filled in).

    Strawberry's generic conversion resolves every field's type annotation again for each input object;
    with 1,000 transfers a call that was a third of recordTransfers' CPU.
    """
    attributes = value.get("attributes")
    return cls(
        transfer_id=value["transferId"],
        payer_id=value["payerId"],
        payee_id=value["payeeId"],
        amount=value["amount"],
        currency=value["currency"],
        committed_at=value["committedAt"],
        settlement_model=value.get("settlementModel"),
        attributes=None if attributes is None else [AttributeInput(key=a["key"], value=a["value"])
                                                    for a in attributes],
        refund_of=value.get("refundOf"),
    )


TransferInput.__strawberry_definition__.from_input = _transfer_input  # type: ignore[attr-defined]


@strawberry.type
class TransferResult:
    transfer_id: str
    outcome: TransferOutcome
    batch_id: strawberry.Private[int | None]
    error: UserError | None = None

    @strawberry.field
    async def batch(self, info: Info) -> Annotated[Batch, strawberry.lazy("graphql_schema.batches.types")] | None:
        from graphql_schema.batches.types import load_batch

        return await load_batch(info, self.batch_id) if self.batch_id is not None else None


@strawberry.type
class RecordTransfersPayload:
    recorded: int
    duplicates: int
    rejected: int
    results: list[TransferResult]
    user_errors: list[UserError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: RecordingResult) -> RecordTransfersPayload:
        recorded, duplicates, rejected = (result.count(outcome) for _, outcome in COUNTS)
        return cls(recorded=recorded, duplicates=duplicates, rejected=rejected, results=[
            TransferResult(transfer_id=o.transfer_id, outcome=o.outcome, batch_id=o.batch_id,
                           error=UserError.of(o.error) if o.error else None)
            for o in result.outcomes
        ])

    @classmethod
    def refused(cls, error: UserError, arguments: dict[str, Any]) -> RecordTransfersPayload:
        """The whole call refused (too many transfers): every transfer is rejected."""
        return cls(recorded=0, duplicates=0, rejected=len(arguments["transfers"]), results=[], user_errors=[error])
