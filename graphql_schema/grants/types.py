"""GraphQL types of payment grants and prepared transfers (SPEC §9).

Plain fields are filled by each type's `of()`; resolvers only for relations and computed values. A field's place
in the type is its place in the class (a resolver is declared as `name: T = strawberry.field(resolver=...)`), so
the printed schema keeps its order.
"""
from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from app.grants.grants import GrantSpending
from app.grants.intervals import IntervalPeriod
from app.grants.reconciliation import Reconciliation
from app.grants.reservations import PrepareRequest
from app.grants.rules import DEBIT, RECEIVE, GrantRequest
from graphql_schema.common import AttributeInput
from graphql_schema.context import Info
from graphql_schema.errors import UserError
from graphql_schema.permissions import sees
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
    def of(cls, period: IntervalPeriod | None) -> GrantInterval | None:
        return cls(index=period.index, start=period.start, end=period.end) if period else None

    @classmethod
    def stored(cls, index: int | None, start: datetime | None, end: datetime | None) -> GrantInterval | None:
        """A period as a row stores it (null columns without interval)."""
        if index is None or start is None or end is None:
            return None
        return cls(index=index, start=start, end=end)


@strawberry.enum
class PreparedTransferState(enum.Enum):
    RESERVED = "RESERVED"
    COMMITTED = "COMMITTED"
    ABORTED = "ABORTED"


def _optional(minor: int | None, currency: str) -> Amount | None:
    return amount(minor, currency) if minor is not None else None


@strawberry.type(description="One append-only change of what a limited grant has spent.")
class GrantSpentAmount:
    transfer_id: str
    state: PreparedTransferState
    interval: GrantInterval | None
    transfer_debit_amount: Amount = strawberry.field(
        description="What the transfer counts after this change (debit side).")
    transfer_receive_amount: Amount = strawberry.field(
        description="What the transfer counts after this change (receive side).")
    interval_debit_amount: Amount | None = strawberry.field(
        description="Sum of the transfer's interval after this change; null without interval.")
    interval_receive_amount: Amount | None
    total_debit_amount: Amount = strawberry.field(description="Sum over the grant's whole life after this change.")
    total_receive_amount: Amount
    currency: str
    actor: str
    recorded_at: datetime = strawberry.field(
        description="When it was written; informative only, the order is the list's order.")

    @classmethod
    def of(cls, row: SpentRow) -> GrantSpentAmount:
        c = row.currency
        return cls(
            transfer_id=row.transfer_id, state=PreparedTransferState(row.state),
            interval=GrantInterval.stored(row.interval_index, row.interval_start, row.interval_end),
            transfer_debit_amount=amount(row.transfer_debit, c),
            transfer_receive_amount=amount(row.transfer_receive, c),
            interval_debit_amount=_optional(row.interval_debit, c),
            interval_receive_amount=_optional(row.interval_receive, c),
            total_debit_amount=amount(row.total_debit, c), total_receive_amount=amount(row.total_receive, c),
            currency=c, actor=row.actor, recorded_at=row.recorded_at,
        )


# What a grant has spent: one DataLoader read for every grant of the request (graphql_schema/loaders.py).
async def _spending(root: Grant, info: Info) -> GrantSpending:
    found = await info.context.loaders.grant_spent.load(root.pk)
    assert found is not None
    return found


async def _spent_debit(root: Grant, info: Info) -> Money | None:
    spent = (await _spending(root, info)).spent
    return Money.of(spent.debit, spent.currency)


async def _spent_receive(root: Grant, info: Info) -> Money | None:
    spent = (await _spending(root, info)).spent
    return Money.of(spent.receive, spent.currency)


async def _current_interval(root: Grant, info: Info) -> GrantInterval | None:
    return GrantInterval.of((await _spending(root, info)).spent.period)


async def _total_debit(root: Grant, info: Info) -> Money | None:
    spent = (await _spending(root, info)).spent
    return Money.of(spent.total_debit, spent.currency)


async def _total_receive(root: Grant, info: Info) -> Money | None:
    spent = (await _spending(root, info)).spent
    return Money.of(spent.total_receive, spent.currency)


async def _spent_amounts(root: Grant, last: int = 100) -> list[GrantSpentAmount]:
    size = max(0, min(last, 1000))
    rows = await SpentRow.filter(grant_id=root.pk).order_by("-id").limit(size)
    return [GrantSpentAmount.of(r) for r in reversed(rows)]


_SPENT_NOW = "Spent in the current interval (or overall without one); null if not limited."
_SPENT_EVER = "Spent over the grant's whole life, all intervals; null if not limited."


@strawberry.type
class Grant:
    pk: strawberry.Private[int]
    id: strawberry.ID
    payer_id: str
    payee_id: str | None
    debit_amount: Money | None
    receive_amount: Money | None
    interval: str | None
    spent_debit_amount: Money | None = strawberry.field(resolver=_spent_debit, description=_SPENT_NOW)
    spent_receive_amount: Money | None = strawberry.field(resolver=_spent_receive, description=_SPENT_NOW)
    current_interval: GrantInterval | None = strawberry.field(
        resolver=_current_interval,
        description="The interval period containing now; null without interval or outside it.")
    total_spent_debit_amount: Money | None = strawberry.field(resolver=_total_debit, description=_SPENT_EVER)
    total_spent_receive_amount: Money | None = strawberry.field(resolver=_total_receive, description=_SPENT_EVER)
    spent_amounts: list[GrantSpentAmount] = strawberry.field(
        resolver=_spent_amounts,
        description="The append-only spent-amount records, oldest first (at most `last`, newest).")

    @classmethod
    def of(cls, row: GrantRow) -> Grant:
        limit = Money.of(row.limit_amount, row.currency)
        return cls(pk=row.id, id=strawberry.ID(str(row.id)), payer_id=row.payer_id, payee_id=row.payee_id,
                   debit_amount=limit if row.limit_kind == DEBIT else None,
                   receive_amount=limit if row.limit_kind == RECEIVE else None, interval=row.interval)


@strawberry.input
class GrantInput:
    payer_id: str
    payee_id: str | None = None
    debit_amount: MoneyInput | None = None
    receive_amount: MoneyInput | None = None
    interval: str | None = None

    def to_app(self) -> GrantRequest:
        return GrantRequest(
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


async def _grant_of(root: PreparedTransfer, info: Info) -> Grant | None:
    if root.grant_pk is None:
        return None
    found = await info.context.loaders.grant_spent.load(root.grant_pk)
    return Grant.of(found.grant) if found and sees(info, found.grant.payer_id) else None  # a payee sees no limits


async def _transfer_of(
    root: PreparedTransfer,
) -> Annotated[Transfer, strawberry.lazy("graphql_schema.transfers.types")] | None:
    from graphql_schema.transfers.types import Transfer
    from models.settlement import Transfer as TransferRow

    if root.state != PreparedTransferState.COMMITTED:
        return None
    row = await TransferRow.get_or_none(transfer_id=root.transfer_id)
    return Transfer.of(row) if row else None


@strawberry.type
class PreparedTransfer:
    grant_pk: strawberry.Private[int | None]
    transfer_id: str
    state: PreparedTransferState
    grant: Grant | None = strawberry.field(resolver=_grant_of)
    transfer: Annotated[Transfer, strawberry.lazy("graphql_schema.transfers.types")] | None = strawberry.field(
        resolver=_transfer_of, description="The settlement transfer, once committed.")
    payer_id: str
    payee_id: str
    currency: str
    amount: Amount = strawberry.field(description="The debit amount reserved.")
    receive_amount: Amount = strawberry.field(description="The receive amount reserved.")
    delivered_amount: Amount | None
    sent_amount: Amount | None
    prepared_at: datetime
    committed_at: datetime | None
    interval: GrantInterval | None = strawberry.field(
        description="The grant interval period the transfer was prepared in; its spending stays there.")

    @classmethod
    def of(cls, row: PreparedRow) -> PreparedTransfer:
        c = row.currency
        return cls(
            grant_pk=row.grant_id, transfer_id=row.transfer_id,  # type: ignore[attr-defined]
            state=PreparedTransferState(row.state), payer_id=row.payer_id, payee_id=row.payee_id, currency=c,
            amount=amount(row.amount, c), receive_amount=amount(row.receive_amount, c),
            delivered_amount=_optional(row.delivered_amount, c), sent_amount=_optional(row.sent_amount, c),
            prepared_at=row.prepared_at, committed_at=row.committed_at,
            interval=GrantInterval.stored(row.interval_index, row.interval_start, row.interval_end),
        )


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
    def of(cls, report: Reconciliation) -> GrantReconciliation:
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
