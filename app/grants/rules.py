"""The rules of payment grants (SPEC §9), pure: no database, no clock, no Tortoise.

- A grant as given is checked by `validate_grant`.
- A prepare must match the grant's payer, payee and currency (`check_match`), fall in a period of its interval
  (`check_active`), and fit in what is left of its limit (`check_limit`: THE limit rule, the one place it is
  written, for both databases).
- A commit delivers at most the reserved receive amount (`delivered_amount`, `check_commit`); an abort keeps
  what was sent, at most the reserved amount (`sent_amount`, `check_abort`), and the receive side in proportion,
  rounded down (`kept_receive`).
- Every change appends one spent-amount row whose running sums continue the latest ones (`Sums`, `SpentChange`).
- What a transfer counts against its grant now (`contribution`) is what reconciliation adds up.
Money is integers of minor units (app/core/money.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from app.core import errors, money
from app.core.checks import check_id
from app.core.errors import (
    AMOUNT_EXCEEDS_RESERVED,
    GRANT_CURRENCY_MISMATCH,
    GRANT_LIMIT_EXCEEDED,
    GRANT_NOT_ACTIVE,
    GRANT_PAYEE_MISMATCH,
    GRANT_PAYER_MISMATCH,
    ONLY_ONE_GRANT_AMOUNT,
    DomainError,
)
from app.grants import intervals
from app.grants.intervals import IntervalPeriod

# Limit kinds and transfer states (the stable refusal codes are in app/core/errors.py).
DEBIT = "DEBIT"
RECEIVE = "RECEIVE"
RESERVED = "RESERVED"
COMMITTED = "COMMITTED"
ABORTED = "ABORTED"


# -- grants ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GrantRequest:
    """A grant as the caller gave it; amounts as (value, currency)."""

    payer_id: str
    payee_id: str | None = None
    debit_amount: tuple[str, str] | None = None
    receive_amount: tuple[str, str] | None = None
    interval: str | None = None


@dataclass(frozen=True)
class GrantSpec:
    """A grant checked, ready to be stored."""

    payer_id: str
    payee_id: str | None
    limit_kind: str | None
    limit_amount: int | None
    currency: str | None
    interval: str | None


def validate_grant(request: GrantRequest) -> GrantSpec:
    check_id(request.payer_id, "payerId")
    if request.payee_id is not None:
        check_id(request.payee_id, "payeeId")
        if request.payee_id == request.payer_id:
            raise DomainError(errors.SAME_PARTICIPANT, "payer and payee must differ", ["payeeId"])
    if request.debit_amount is not None and request.receive_amount is not None:
        raise DomainError(ONLY_ONE_GRANT_AMOUNT, "a grant limits either debitAmount or receiveAmount, not both",
                          ["receiveAmount"])
    kind, limit, currency = None, None, None
    for name, where, given in ((DEBIT, "debitAmount", request.debit_amount),
                               (RECEIVE, "receiveAmount", request.receive_amount)):
        if given is not None:
            value, currency = given
            limit = parse_amount(value, currency, where, allow_zero=False)
            kind = name
    if request.interval is not None:
        intervals.parse(request.interval)
    return GrantSpec(request.payer_id, request.payee_id, kind, limit, currency, request.interval)


def parse_amount(value: str, currency: str, where: str, *, allow_zero: bool) -> int:
    """An amount given at input `where`, in minor units: positive (or zero when `allow_zero`)."""
    try:
        minor = money.to_minor(money.parse_decimal(value), currency)
    except DomainError as exc:
        sub = "currency" if exc.code == errors.UNKNOWN_CURRENCY else "value"
        raise DomainError(exc.code, exc.message, [where, sub]) from None
    if minor < 0 or (minor == 0 and not allow_zero):
        raise DomainError(errors.AMOUNT_NOT_POSITIVE,
                          f"{where} must be {'zero or more' if allow_zero else 'positive'}, got {value}", [where])
    return minor


@dataclass(frozen=True)
class GrantTerms:
    """What a stored grant allows (the columns the rules read)."""

    id: int
    payer_id: str
    payee_id: str | None
    limit_kind: str | None  # DEBIT | RECEIVE | None: no limit, nothing tracked
    limit_amount: int | None
    currency: str | None
    interval: str | None

    @property
    def limited(self) -> bool:
        return self.limit_kind is not None

    def period_at(self, moment: datetime) -> IntervalPeriod | None:
        """The period of the grant's interval containing `moment`; None without interval or outside it."""
        return repeating_interval(self.interval).period_at(moment) if self.interval else None


@lru_cache(maxsize=1024)
def repeating_interval(text: str) -> intervals.RepeatingInterval:
    """A grant's interval, parsed once per text (grants never change; the parse is pure)."""
    return intervals.parse(text)


# -- spent amounts ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sums:
    """The latest running sums of a grant (total) and of one of its periods; zero where no row exists yet."""

    total_debit: int = 0
    total_receive: int = 0
    interval_debit: int = 0
    interval_receive: int = 0
    has_total: bool = False
    has_interval: bool = False

    def missing(self, in_interval: bool) -> bool:
        """Rows a reserved transfer's commit or abort must find (else: reported, never repaired)."""
        return not self.has_total or (in_interval and not self.has_interval)


@dataclass(frozen=True)
class Spent:
    """What a grant reports: the current period's (or overall) sums of the kinds it limits."""

    debit: int | None
    receive: int | None
    currency: str | None
    period: IntervalPeriod | None
    total_debit: int | None
    total_receive: int | None


def spent_view(grant: GrantTerms, period: IntervalPeriod | None, sums: Sums) -> Spent:
    """SPEC §9: the sums of `period` (the current one), or overall without an interval; zero with the currency
    when nothing is spent there (also outside any period); None for a kind the grant does not limit."""
    if not grant.limited:
        return Spent(None, None, None, None, None, None)
    if grant.interval:
        debit, receive = (sums.interval_debit, sums.interval_receive) if period else (0, 0)
    else:
        debit, receive = sums.total_debit, sums.total_receive
    is_debit = grant.limit_kind == DEBIT
    return Spent(
        debit if is_debit else None, None if is_debit else receive, grant.currency, period,
        sums.total_debit if is_debit else None, None if is_debit else sums.total_receive,
    )


@dataclass(frozen=True)
class SpentChange:
    """One append-only spent-amount row: what the transfer counts now, by how much that moved, and the running
    sums after it of the transfer's own period and of the grant."""

    grant_id: int
    transfer_id: str
    state: str
    currency: str
    period: IntervalPeriod | None
    transfer_debit: int
    transfer_receive: int
    debit_change: int
    receive_change: int
    interval_debit: int | None
    interval_receive: int | None
    total_debit: int
    total_receive: int


def spent_change(grant_id: int, transfer_id: str, currency: str, period: IntervalPeriod | None, sums: Sums, *,
                 state: str, debit: int, receive: int, debit_before: int = 0,
                 receive_before: int = 0) -> SpentChange:
    """The row of a transfer that counted (debit_before, receive_before) and now counts (debit, receive),
    continuing `sums`, the latest of its period (not the current one) and of the grant."""
    debit_change, receive_change = debit - debit_before, receive - receive_before
    return SpentChange(
        grant_id, transfer_id, state, currency, period, debit, receive, debit_change, receive_change,
        sums.interval_debit + debit_change if period else None,
        sums.interval_receive + receive_change if period else None,
        sums.total_debit + debit_change, sums.total_receive + receive_change,
    )


# -- prepare ---------------------------------------------------------------------------------------------

def check_match(grant: GrantTerms, payer_id: str, payee_id: str, currency: str) -> None:
    """Only the grant's payer spends under it, to its payee if it names one, in its limit's currency."""
    if payer_id != grant.payer_id:
        raise DomainError(GRANT_PAYER_MISMATCH,
                          f"grant {grant.id} belongs to payer {grant.payer_id}, not {payer_id}", ["payerId"])
    if grant.payee_id is not None and payee_id != grant.payee_id:
        raise DomainError(GRANT_PAYEE_MISMATCH,
                          f"grant {grant.id} only pays {grant.payee_id}, not {payee_id}", ["payeeId"])
    if grant.currency is not None and currency != grant.currency:
        raise DomainError(GRANT_CURRENCY_MISMATCH,
                          f"grant {grant.id} is limited in {grant.currency}, the transfer is in {currency}",
                          ["currency"])


def check_active(grant: GrantTerms, period: IntervalPeriod | None, prepared_at: datetime) -> None:
    """A grant with an interval spends only inside one of its periods."""
    if grant.interval and period is None:
        raise DomainError(GRANT_NOT_ACTIVE, f"grant {grant.id}'s interval {grant.interval} has no period at "
                          f"{prepared_at.isoformat()}", ["preparedAt"])


def check_limit(grant: GrantTerms, sums: Sums, period: IntervalPeriod | None, debit: int, receive: int) -> None:
    """THE limit rule: the amount of the limited kind (debit or receive) must fit in the limit minus what is
    spent in `period` (the transfer's, which is the current one), or overall when the grant has no interval."""
    if not grant.limited:
        return
    assert grant.limit_amount is not None and grant.currency is not None
    if grant.limit_kind == DEBIT:
        spent, wanted, where = (sums.interval_debit if period else sums.total_debit), debit, "amount"
    else:
        spent, wanted, where = (sums.interval_receive if period else sums.total_receive), receive, "receiveAmount"
    if spent + wanted > grant.limit_amount:
        scope = f"in the period from {period.start.isoformat()}" if period else "overall"
        fmt, currency = money.format_minor, grant.currency
        raise DomainError(
            GRANT_LIMIT_EXCEEDED,
            f"grant {grant.id}: {fmt(wanted, currency)} {currency} does not fit the "
            f"{str(grant.limit_kind).lower()} limit of {fmt(grant.limit_amount, currency)} with "
            f"{fmt(spent, currency)} spent {scope}",
            [where],
        )


# -- commit and abort ------------------------------------------------------------------------------------

def delivered_amount(value: str, currency: str, reserved_receive: int) -> int:
    """A commit's deliveredAmount (receive side): positive, at most the reserved receive amount."""
    return _at_most(parse_amount(value, currency, "deliveredAmount", allow_zero=False), value, currency,
                    reserved_receive, "deliveredAmount", "receive amount")


def sent_amount(value: str, currency: str, reserved_debit: int) -> int:
    """An abort's sentAmount (debit side): zero or more, at most the reserved amount."""
    return _at_most(parse_amount(value, currency, "sentAmount", allow_zero=True), value, currency, reserved_debit,
                    "sentAmount", "amount")


def _at_most(minor: int, value: str, currency: str, reserved: int, where: str, what: str) -> int:
    if minor > reserved:
        raise DomainError(AMOUNT_EXCEEDS_RESERVED, f"{where} {value} exceeds the reserved {what} "
                          f"{money.format_minor(reserved, currency)}", [where])
    return minor


def check_commit(transfer_id: str, state: str, prepared_at: datetime, reserved_receive: int, currency: str,
                 delivered: str | None, committed_at: datetime | None, now: datetime) -> tuple[int, datetime]:
    """What the commit of a reserved (not yet committed) transfer delivers (`delivered`, or all that was
    reserved) and when (`committed_at` with an offset, not before the preparation, or now)."""
    if state == ABORTED:
        raise DomainError(errors.INVALID_TRANSITION,
                          f"transfer {transfer_id} was aborted: it cannot be committed", ["transferId"])
    arrived = reserved_receive if delivered is None else delivered_amount(delivered, currency, reserved_receive)
    if committed_at is not None and committed_at.tzinfo is None:
        raise DomainError(errors.VALIDATION, "committedAt needs a UTC offset", ["committedAt"])
    when = (committed_at or now).astimezone(UTC)
    if when < prepared_at:
        raise DomainError(errors.VALIDATION, f"committedAt lies before preparedAt {prepared_at.isoformat()}",
                          ["committedAt"])
    return arrived, when


def check_abort(transfer_id: str, state: str) -> bool:
    """Whether an abort has anything to do: False for a retry (already aborted); a committed transfer is
    refused."""
    if state == COMMITTED:
        raise DomainError(errors.INVALID_TRANSITION, f"transfer {transfer_id} was committed: it cannot be aborted",
                          ["transferId"])
    return state != ABORTED


def kept_receive(amount: int, receive_amount: int, sent: int) -> int:
    """The receive side of a partly sent transfer: in proportion to what was sent, rounded down."""
    return receive_amount * sent // amount


def contribution(state: str, amount: int, receive_amount: int, delivered: int | None,
                 sent: int | None) -> tuple[int, int]:
    """What a transfer counts against its grant now, from its own state and amounts: (debit, receive)."""
    if state == COMMITTED:
        return amount, delivered if delivered is not None else receive_amount
    if state == ABORTED:
        kept = sent or 0
        return kept, kept_receive(amount, receive_amount, kept)
    return amount, receive_amount
