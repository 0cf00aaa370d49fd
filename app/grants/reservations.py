"""Reserving transfers under payment grants (SPEC §9): prepare, commit and abort, safe under races.

From Rafiki's grant spent amounts, with the gaps that design leaves closed:
- Every change of a limited grant's spending appends one spent-amount row (the transfer's amounts, its period,
  the running sums of that period and of the grant, the state) in the transaction that holds the grant's lock:
  appends of one grant are serialised, "latest" is the highest id, never a wall-clock timestamp. The limit
  check (rules.py) reads sums read under the lock that covers the reservation it allows: no overspending.
- A transfer's spending stays in the period it was prepared in: a late commit or abort continues that period's
  sums and the grant total, never the current period's.
- Retried prepares, commits and aborts change nothing and answer the same state.
Calls of one kind share transactions (groups.py), each with its own outcome and audit entry. Every decision is
made in Python (rules.py); the store (store.py) only reads and writes.

Lock order, the same everywhere so that no two transactions wait on each other:
- prepare: the group's grants, all at once in id order; then it only inserts new rows;
- commit: the group's prepared transfers (id order), the batches it files into, then its grants (id order);
  abort: the transfers, then the grants.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app import audit
from app.auth import Principal
from app.batches.recording import RecordingResult, file_calls
from app.batches.transfers import TransferRequest, model_infos, prepare
from app.core import clock, errors, metrics, money
from app.core.checks import check_reason, parse_id
from app.core.errors import DomainError
from app.db.columns import fits
from app.db.group_commit import Dirty
from app.grants import rules
from app.grants.groups import Work, writer
from app.grants.intervals import IntervalPeriod
from app.grants.rules import ABORTED, COMMITTED, RESERVED, GrantTerms
from app.grants.store import GrantStore
from models.grants import PreparedTransfer

log = logging.getLogger("settlegraph.grants")


@dataclass(frozen=True)
class PrepareRequest:
    transfer_id: str
    payer_id: str
    payee_id: str
    amount: str
    currency: str
    receive_amount: str | None = None
    grant_id: str | None = None
    prepared_at: datetime | None = None
    settlement_model: str | None = None
    attributes: Sequence[tuple[str, str]] | None = None


@dataclass
class Completion:
    transfer: PreparedTransfer
    recording: RecordingResult | None = None  # None for a retry: nothing changed


async def find_prepared(transfer_id: str) -> PreparedTransfer | None:
    if not fits(PreparedTransfer, "transfer_id", transfer_id):
        return None
    return await PreparedTransfer.get_or_none(transfer_id=transfer_id)


# -- the commands ----------------------------------------------------------------------------------------

async def prepare_transfer(request: PrepareRequest, caller: Principal | None) -> PreparedTransfer:
    """Reserve a transfer, under a grant's limit when it names one."""
    command = audit.Command(caller, "prepareTransfer", request.transfer_id)
    return await audit.submitted(command, _submit_prepare(command, request))


async def _submit_prepare(command: audit.Command, request: PrepareRequest) -> PreparedTransfer:
    if request.prepared_at is not None and request.prepared_at.tzinfo is None:
        raise DomainError(errors.VALIDATION, "preparedAt needs a UTC offset", ["preparedAt"])
    prepared_at = (request.prepared_at or clock.now()).astimezone(UTC)
    result: PreparedTransfer = await writer("prepareTransfer", _prepare_all).submit(
        Work(command, request.transfer_id, (request, prepared_at)))
    return result


async def commit_transfer(transfer_id: str, delivered_amount: str | None, committed_at: datetime | None,
                          caller: Principal | None) -> Completion:
    """Commit a reservation: file the transfer into settlement batches (SPEC §4) and give back the undelivered
    receive part, in one transaction."""
    command = audit.Command(caller, "commitTransfer", transfer_id)
    return await audit.submitted(command, writer("commitTransfer", _commit_all).submit(
        Work(command, transfer_id, (delivered_amount, committed_at))))


async def abort_transfer(transfer_id: str, sent_amount: str | None, reason: str | None,
                         caller: Principal | None) -> Completion:
    """Give back what was reserved but not sent: `sentAmount` (debit side) stays spent, the receive side is kept
    in proportion, rounded down to the currency's minor unit."""
    command = audit.Command(caller, "abortTransfer", transfer_id)

    async def submit() -> Completion:
        check_reason(reason)
        result: Completion = await writer("abortTransfer", _abort_all).submit(
            Work(command, transfer_id, (sent_amount, reason)))
        return result

    return await audit.submitted(command, submit())


# -- prepare ---------------------------------------------------------------------------------------------

async def _prepare_all(store: GrantStore, works: list[Work], now: datetime) -> list[Any]:
    """The group's prepares one by one, in arrival order, each seeing what the earlier ones wrote. All the grants
    they name are locked first, by one statement: the sums each prepare reads next are read after that."""
    grants = await store.lock_grants(sorted({n for w in works if (n := _grant_number(w.args[0].grant_id))}))
    results: list[Any] = []
    for work in works:
        request, prepared_at = work.args
        try:
            results.append(await _prepare(store, grants, request, prepared_at, work.command.actor, now))
        except DomainError as exc:
            results.append(exc)
    return results


async def _prepare(store: GrantStore, grants: dict[int, GrantTerms], request: PrepareRequest,
                   prepared_at: datetime, actor: str, now: datetime) -> PreparedTransfer:
    """One prepare in the group's transaction: one read, the rules, one write; a refusal has written nothing."""
    number = _grant_number(request.grant_id)
    grant = grants.get(number) if number is not None else None
    period = grant.period_at(prepared_at) if grant is not None else None
    limited = grant is not None and grant.limited
    found = await store.prepare_lookup(request.transfer_id, grant.id if grant is not None and limited else None,
                                       period.index if period else None)
    checked = _check(request, prepared_at, now, found.models)
    if checked.grant_id is not None and grant is None:
        raise DomainError(errors.NOT_FOUND, f"no grant {checked.grant_id}", ["grantId"])
    if found.prepared:  # a retry (same content) or a conflict, answered before any grant rule
        existing = await PreparedTransfer.get(transfer_id=request.transfer_id, using_db=store.conn)
        return _same_or_conflict(existing, request, checked)
    if found.recorded:
        raise DomainError(errors.TRANSFER_CONFLICT,
                          f"transfer {request.transfer_id} was already recorded as a cleared transfer",
                          ["transferId"])
    change = None
    if grant is not None:
        rules.check_match(grant, request.payer_id, request.payee_id, request.currency)
        rules.check_active(grant, period, checked.prepared_at)
        rules.check_limit(grant, found.sums, period, checked.amount, checked.receive_amount)
        if limited:
            change = rules.spent_change(grant.id, request.transfer_id, request.currency, period, found.sums,
                                        state=RESERVED, debit=checked.amount, receive=checked.receive_amount)
    transfer = PreparedTransfer(
        transfer_id=request.transfer_id, grant_id=grant.id if grant else None, payer_id=request.payer_id,
        payee_id=request.payee_id, currency=request.currency, amount=checked.amount,
        receive_amount=checked.receive_amount, settlement_model=request.settlement_model,
        attributes=[[k, v] for k, v in checked.attributes], prepared_at=checked.prepared_at,
        interval_index=period.index if period else None, interval_start=period.start if period else None,
        interval_end=period.end if period else None, state=RESERVED, prepared_by=actor,
    )
    transfer.id = await store.reserve(transfer, change, actor, now)
    transfer._saved_in_db = True
    return transfer


@dataclass(frozen=True)
class _Checked:
    amount: int
    receive_amount: int
    prepared_at: datetime
    grant_id: int | None
    attributes: list[tuple[str, str]]


def _check(request: PrepareRequest, prepared_at: datetime, now: datetime, models: list[dict[str, Any]]) -> _Checked:
    """Everything a settlement transfer must satisfy (ids, amount, model, attributes, time) plus the receive
    amount and the grant id."""
    as_transfer = TransferRequest(
        transfer_id=request.transfer_id, payer_id=request.payer_id, payee_id=request.payee_id,
        amount=request.amount, currency=request.currency, committed_at=prepared_at,
        settlement_model=request.settlement_model, attributes=request.attributes,
    )
    try:
        prepared = prepare(as_transfer, 0, model_infos(models), now)
    except DomainError as exc:
        where = ["preparedAt"] if exc.field == ["committedAt"] else exc.field
        raise DomainError(exc.code, exc.message.replace("committedAt", "preparedAt"), where) from None
    receive = prepared.row.amount
    if request.receive_amount is not None:
        try:
            receive = money.positive_minor(money.parse_decimal(request.receive_amount), request.currency)
        except DomainError as exc:
            raise DomainError(exc.code, exc.message, ["receiveAmount"]) from None
    grant_id = parse_id(request.grant_id, "grantId") if request.grant_id is not None else None
    return _Checked(prepared.row.amount, receive, prepared.row.committed_at, grant_id, list(prepared.row.attributes))


def _grant_number(grant_id: str | None) -> int | None:
    """The grant id to look up (None when none or malformed: _check words the refusal)."""
    if grant_id is None:
        return None
    try:
        return parse_id(grant_id, "grantId")
    except DomainError:
        return None


def _same_or_conflict(existing: PreparedTransfer, request: PrepareRequest, checked: _Checked) -> PreparedTransfer:
    same = (
        existing.payer_id == request.payer_id and existing.payee_id == request.payee_id
        and existing.currency == request.currency and existing.amount == checked.amount
        and existing.receive_amount == checked.receive_amount
        and existing.grant_id == checked.grant_id  # type: ignore[attr-defined]
        and existing.settlement_model == request.settlement_model
        and [tuple(a) for a in existing.attributes or []] == [tuple(a) for a in checked.attributes]
    )
    if not same:
        raise DomainError(errors.TRANSFER_CONFLICT,
                          f"transfer {request.transfer_id} was already prepared with different content",
                          ["transferId"])
    return existing


# -- commit and abort ------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Finishing:
    """A commit or abort that passed its checks: the transfer's changes and what it counts from now on."""

    transfer: PreparedTransfer
    changes: dict[str, Any]
    debit: int
    receive: int


async def _commit_all(store: GrantStore, works: list[Work], now: datetime) -> list[Any]:
    """The group's commits, set-wise: lock their transfers, check each, file the ones that pass in one go, then
    finish them."""
    results: list[Any] = [None] * len(works)
    locked = await store.lock_transfers([w.transfer_id for w in works])
    checked: list[tuple[int, PreparedTransfer, int, datetime]] = []
    for index, work in enumerate(works):
        delivered_amount, committed_at = work.args
        try:
            transfer = _locked(locked, work.transfer_id)
            if transfer.state == COMMITTED:
                results[index] = Completion(transfer)
                continue
            delivered, when = rules.check_commit(transfer.transfer_id, transfer.state, transfer.prepared_at,
                                                 transfer.receive_amount, transfer.currency, delivered_amount,
                                                 committed_at, now)
        except DomainError as exc:
            results[index] = exc
            continue
        checked.append((index, transfer, delivered, when))
    actor = works[0].command.actor  # a group's works share one actor
    filed = await file_calls(store.conn, [[TransferRequest(
        transfer_id=transfer.transfer_id, payer_id=transfer.payer_id, payee_id=transfer.payee_id,
        amount=money.format_minor(transfer.amount, transfer.currency), currency=transfer.currency,
        committed_at=when, settlement_model=transfer.settlement_model,
        attributes=[(k, v) for k, v in transfer.attributes or []] or None,
    )] for _, transfer, _, when in checked], actor) if checked else []
    finishing = []
    for (index, transfer, delivered, when), result in zip(checked, filed, strict=True):
        outcome = result.outcomes[0]
        if outcome.outcome == "REJECTED":  # nothing was filed for it
            error = outcome.error or DomainError(errors.INTERNAL, "the transfer could not be filed")
            results[index] = DomainError(error.code, error.message,
                                         [f for f in error.field or [] if f not in ("transfers", "0")])
            continue
        results[index] = Completion(transfer, result)
        finishing.append(_Finishing(transfer, {"state": COMMITTED, "delivered_amount": delivered,
                                               "committed_at": when, "finished_by": actor, "finished_at": now},
                                    transfer.amount, delivered))
    await _finish_all(store, finishing, actor, now)
    return results


async def _abort_all(store: GrantStore, works: list[Work], now: datetime) -> list[Any]:
    """The group's aborts, set-wise: lock their transfers, check each, finish the ones that pass."""
    results: list[Any] = [None] * len(works)
    locked = await store.lock_transfers([w.transfer_id for w in works])
    actor = works[0].command.actor
    finishing = []
    for index, work in enumerate(works):
        sent_amount, reason = work.args
        try:
            transfer = _locked(locked, work.transfer_id)
            if not rules.check_abort(transfer.transfer_id, transfer.state):
                results[index] = Completion(transfer)
                continue
            sent = 0 if sent_amount is None else rules.sent_amount(sent_amount, transfer.currency, transfer.amount)
        except DomainError as exc:
            results[index] = exc
            continue
        results[index] = Completion(transfer, RecordingResult([]))
        finishing.append(_Finishing(transfer, {"state": ABORTED, "sent_amount": sent, "reason": reason,
                                               "finished_by": actor, "finished_at": now},
                                    sent, rules.kept_receive(transfer.amount, transfer.receive_amount, sent)))
    await _finish_all(store, finishing, actor, now)
    return results


def _locked(locked: dict[str, PreparedTransfer], transfer_id: str) -> PreparedTransfer:
    transfer = locked.get(transfer_id)
    if transfer is None:
        raise DomainError(errors.NOT_FOUND, f"no prepared transfer {transfer_id}", ["transferId"])
    return transfer


async def _finish_all(store: GrantStore, finishing: list[_Finishing], actor: str, now: datetime) -> None:
    """Store the changes of the (locked) transfers and append the spent-amount rows of those under a limit, to
    the period each was prepared in. The grants are locked first, in id order, by one statement, so the sums
    read next are the latest."""
    grant_ids = sorted({g for f in finishing if (g := f.transfer.grant_id) is not None})  # type: ignore[attr-defined]
    grants = await store.lock_grants(grant_ids) if grant_ids else {}
    for f in finishing:
        transfer = f.transfer
        grant_id: int | None = transfer.grant_id  # type: ignore[attr-defined]
        grant = grants.get(grant_id) if grant_id is not None else None
        if grant_id is not None and grant is None:  # the transfer is written: only a rollback undoes it
            raise Dirty(DomainError(errors.NOT_FOUND, f"no grant {grant_id}", ["grantId"]))
        if grant is None or not grant.limited:
            await store.finish(transfer.id, f.changes)
            _apply(transfer, f.changes)
            continue
        sums = await store.finish(transfer.id, f.changes, grant.id, transfer.interval_index)
        period = _period_of(transfer)
        if sums.missing(period is not None):
            _report_missing(grant, transfer)
        await store.append(rules.spent_change(
            grant.id, transfer.transfer_id, transfer.currency, period, sums, state=f.changes["state"],
            debit=f.debit, receive=f.receive, debit_before=transfer.amount, receive_before=transfer.receive_amount,
        ), actor, now)
        _apply(transfer, f.changes)


def _apply(transfer: PreparedTransfer, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        setattr(transfer, name, value)


def _period_of(transfer: PreparedTransfer) -> IntervalPeriod | None:
    """The period the transfer was prepared in (its spending stays counted there)."""
    if transfer.interval_index is None or transfer.interval_start is None or transfer.interval_end is None:
        return None
    return IntervalPeriod(transfer.interval_index, transfer.interval_start, transfer.interval_end)


def _report_missing(grant: GrantTerms, transfer: PreparedTransfer) -> None:
    """A reservation's rows must exist when it is committed or aborted; say so loudly if not (never repaired)."""
    metrics.GRANT_SPENT_AMOUNT_ISSUES.labels(kind="missing").inc()
    log.error("grant spent amounts missing for a reserved transfer",
              extra={"grant_id": grant.id, "transfer_id": transfer.transfer_id,
                     "interval_index": transfer.interval_index})
