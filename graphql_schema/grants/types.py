"""GraphQL types of payment grants and prepared transfers (SPEC §9)."""
from __future__ import annotations

import asyncio
import enum
from dataclasses import field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from app import grants
from app.grants import GrantSpec, PrepareRequest, Spent
from app.intervals import Period
from graphql_schema.common import AttributeInput
from graphql_schema.errors import UserError
from graphql_schema.scalars import Amount, amount
from models.grants import Grant as GrantRow
from models.grants import GrantSpentAmount as SpentRow
from models.grants import PreparedTransfer as PreparedRow

if TYPE_CHECKING:
    from graphql_schema.transfers.types import Transfer


@strawberry.type
class Money:
    value: Amount
    currency: str

    @classmethod
    def of(cls, minor: int | None, currency: str | None) -> Money | None:
        if minor is None or currency is None:
            return None
        return cls(value=amount(minor, currency), currency=currency)


@strawberry.input
class MoneyInput:
    value: Amount
    currency: str


@strawberry.type(description="One period of a grant's repeating interval: [start, end), UTC.")
class GrantInterval:
    index: int
    start: datetime
    end: datetime

    @classmethod
    def of(cls, period: Period | None) -> GrantInterval | None:
        return cls(index=period.index, start=period.start, end=period.end) if period else None


@strawberry.enum
class PreparedTransferState(enum.Enum):
    RESERVED = "RESERVED"
    COMMITTED = "COMMITTED"
    ABORTED = "ABORTED"


@strawberry.type(description="One append-only change of what a limited grant has spent.")
class GrantSpentAmount:
    row: strawberry.Private[SpentRow]

    @strawberry.field
    def transfer_id(self) -> str:
        return self.row.transfer_id

    @strawberry.field
    def state(self) -> PreparedTransferState:
        return PreparedTransferState(self.row.state)

    @strawberry.field
    def interval(self) -> GrantInterval | None:
        r = self.row
        if r.interval_index is None or r.interval_start is None or r.interval_end is None:
            return None
        return GrantInterval(index=r.interval_index, start=r.interval_start, end=r.interval_end)

    @strawberry.field(description="What the transfer counts after this change (debit side).")
    def transfer_debit_amount(self) -> Amount:
        return amount(self.row.transfer_debit, self.row.currency)

    @strawberry.field(description="What the transfer counts after this change (receive side).")
    def transfer_receive_amount(self) -> Amount:
        return amount(self.row.transfer_receive, self.row.currency)

    @strawberry.field(description="Sum of the transfer's interval after this change; null without interval.")
    def interval_debit_amount(self) -> Amount | None:
        r = self.row
        return amount(r.interval_debit, r.currency) if r.interval_debit is not None else None

    @strawberry.field
    def interval_receive_amount(self) -> Amount | None:
        r = self.row
        return amount(r.interval_receive, r.currency) if r.interval_receive is not None else None

    @strawberry.field(description="Sum over the grant's whole life after this change.")
    def total_debit_amount(self) -> Amount:
        return amount(self.row.total_debit, self.row.currency)

    @strawberry.field
    def total_receive_amount(self) -> Amount:
        return amount(self.row.total_receive, self.row.currency)

    @strawberry.field
    def currency(self) -> str:
        return self.row.currency

    @strawberry.field
    def actor(self) -> str:
        return self.row.actor

    @strawberry.field(description="When it was written; informative only, the order is the list's order.")
    def recorded_at(self) -> datetime:
        return self.row.recorded_at


@strawberry.type
class Grant:
    row: strawberry.Private[GrantRow]
    cache: strawberry.Private[dict[str, Any]] = field(default_factory=dict)

    async def _spent(self) -> Spent:
        # Both spent fields resolve concurrently: share one computation.
        if "spent" not in self.cache:
            self.cache["spent"] = asyncio.ensure_future(grants.spent(self.row))
        result: Spent = await self.cache["spent"]
        return result

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.row.id))

    @strawberry.field
    def payer_id(self) -> str:
        return self.row.payer_id

    @strawberry.field
    def payee_id(self) -> str | None:
        return self.row.payee_id

    @strawberry.field
    def debit_amount(self) -> Money | None:
        return Money.of(self.row.limit_amount, self.row.currency) if self.row.limit_kind == grants.DEBIT else None

    @strawberry.field
    def receive_amount(self) -> Money | None:
        return Money.of(self.row.limit_amount, self.row.currency) if self.row.limit_kind == grants.RECEIVE else None

    @strawberry.field
    def interval(self) -> str | None:
        return self.row.interval

    @strawberry.field(description="Spent in the current interval (or overall without one); null if not limited.")
    async def spent_debit_amount(self) -> Money | None:
        spent = await self._spent()
        return Money.of(spent.debit, spent.currency)

    @strawberry.field(description="Spent in the current interval (or overall without one); null if not limited.")
    async def spent_receive_amount(self) -> Money | None:
        spent = await self._spent()
        return Money.of(spent.receive, spent.currency)

    @strawberry.field(description="The interval period containing now; null without interval or outside it.")
    async def current_interval(self) -> GrantInterval | None:
        return GrantInterval.of((await self._spent()).period)

    @strawberry.field(description="Spent over the grant's whole life, all intervals; null if not limited.")
    async def total_spent_debit_amount(self) -> Money | None:
        spent = await self._spent()
        return Money.of(spent.total_debit, spent.currency)

    @strawberry.field(description="Spent over the grant's whole life, all intervals; null if not limited.")
    async def total_spent_receive_amount(self) -> Money | None:
        spent = await self._spent()
        return Money.of(spent.total_receive, spent.currency)

    @strawberry.field(description="The append-only spent-amount records, oldest first (at most `last`, newest).")
    async def spent_amounts(self, last: int = 100) -> list[GrantSpentAmount]:
        size = max(0, min(last, 1000))
        rows = await SpentRow.filter(grant_id=self.row.id).order_by("-id").limit(size)
        return [GrantSpentAmount(row=r) for r in reversed(rows)]


@strawberry.input
class GrantInput:
    payer_id: str
    payee_id: str | None = None
    debit_amount: MoneyInput | None = None
    receive_amount: MoneyInput | None = None
    interval: str | None = None

    def to_app(self) -> GrantSpec:
        return grants.validate_grant(
            self.payer_id, self.payee_id,
            (self.debit_amount.value, self.debit_amount.currency) if self.debit_amount else None,
            (self.receive_amount.value, self.receive_amount.currency) if self.receive_amount else None,
            self.interval,
        )


@strawberry.type
class GrantPayload:
    grant: Grant | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class PrepareTransferInput:
    transfer_id: str
    payer_id: str
    payee_id: str
    amount: Amount
    currency: str
    receive_amount: Amount | None = None
    grant_id: strawberry.ID | None = None
    prepared_at: datetime | None = None
    settlement_model: str | None = None
    attributes: list[AttributeInput] | None = None

    def to_app(self) -> PrepareRequest:
        return PrepareRequest(
            transfer_id=self.transfer_id, payer_id=self.payer_id, payee_id=self.payee_id, amount=self.amount,
            currency=self.currency, receive_amount=self.receive_amount,
            grant_id=str(self.grant_id) if self.grant_id is not None else None, prepared_at=self.prepared_at,
            settlement_model=self.settlement_model,
            attributes=[(a.key, a.value) for a in self.attributes] if self.attributes else None,
        )


@strawberry.type
class PreparedTransfer:
    row: strawberry.Private[PreparedRow]

    @strawberry.field
    def transfer_id(self) -> str:
        return self.row.transfer_id

    @strawberry.field
    def state(self) -> PreparedTransferState:
        return PreparedTransferState(self.row.state)

    @strawberry.field
    async def grant(self) -> Grant | None:
        grant_id = self.row.grant_id  # type: ignore[attr-defined]
        if grant_id is None:
            return None
        row = await GrantRow.get_or_none(id=grant_id)
        return Grant(row=row) if row else None

    @strawberry.field(description="The settlement transfer, once committed.")
    async def transfer(self) -> Annotated[Transfer, strawberry.lazy("graphql_schema.transfers.types")] | None:
        from graphql_schema.transfers.types import Transfer
        from models.settlement import Transfer as TransferRow

        if self.row.state != grants.COMMITTED:
            return None
        row = await TransferRow.get_or_none(transfer_id=self.row.transfer_id)
        return Transfer(row=row) if row else None

    @strawberry.field
    def payer_id(self) -> str:
        return self.row.payer_id

    @strawberry.field
    def payee_id(self) -> str:
        return self.row.payee_id

    @strawberry.field
    def currency(self) -> str:
        return self.row.currency

    @strawberry.field(description="The debit amount reserved.")
    def amount(self) -> Amount:
        return amount(self.row.amount, self.row.currency)

    @strawberry.field(description="The receive amount reserved.")
    def receive_amount(self) -> Amount:
        return amount(self.row.receive_amount, self.row.currency)

    @strawberry.field
    def delivered_amount(self) -> Amount | None:
        value = self.row.delivered_amount
        return amount(value, self.row.currency) if value is not None else None

    @strawberry.field
    def sent_amount(self) -> Amount | None:
        value = self.row.sent_amount
        return amount(value, self.row.currency) if value is not None else None

    @strawberry.field
    def prepared_at(self) -> datetime:
        return self.row.prepared_at

    @strawberry.field
    def committed_at(self) -> datetime | None:
        return self.row.committed_at

    @strawberry.field(description="The grant interval period the transfer was prepared in; its spending stays there.")
    def interval(self) -> GrantInterval | None:
        r = self.row
        if r.interval_index is None or r.interval_start is None or r.interval_end is None:
            return None
        return GrantInterval(index=r.interval_index, start=r.interval_start, end=r.interval_end)


@strawberry.type
class PreparedTransferPayload:
    prepared_transfer: PreparedTransfer | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="A difference between recorded spent amounts and the transfer history.")
class GrantReconciliationIssue:
    kind: str  # MISMATCH | MISSING
    subject: str
    field: str
    expected: Amount | None
    recorded: Amount | None
    transfer_id: str | None
    interval_index: int | None


@strawberry.type
class GrantReconciliation:
    grant_id: strawberry.ID
    consistent: bool
    checked_transfers: int
    checked_records: int
    issues: list[GrantReconciliationIssue]

    @classmethod
    def of(cls, report: grants.Reconciliation) -> GrantReconciliation:
        def wire(value: int | None) -> Amount | None:
            if value is None or report.currency is None:
                return None
            return amount(value, report.currency)

        return cls(
            grant_id=strawberry.ID(str(report.grant_id)), consistent=report.consistent,
            checked_transfers=report.checked_transfers, checked_records=report.checked_records,
            issues=[GrantReconciliationIssue(
                kind=i.kind, subject=i.subject, field=i.field,
                expected=wire(i.expected) if i.field != "intervalIndex" else _text(i.expected),
                recorded=wire(i.recorded) if i.field != "intervalIndex" else _text(i.recorded),
                transfer_id=i.transfer_id, interval_index=i.interval_index,
            ) for i in report.issues],
        )


def _text(value: int | None) -> Amount | None:
    return None if value is None else Amount(str(value))


@strawberry.type
class GrantReconciliationPayload:
    reconciliation: GrantReconciliation | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
