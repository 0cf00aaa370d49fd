"""Settlement matrices (SPEC §6): DYNAMIC and STATIC selections of batches, their commands and settlement.

A DYNAMIC matrix is its criteria: while it is OPEN its batches are every batch that matches them now,
so batches created later join it. requestSettlement freezes the set (the members are written to
matrix_batch). A STATIC matrix lists its batches. Totals are never stored: app/matrix_totals.py sums
them on read.

Every command is one transaction. It locks the matrix row, then its batches (FOR UPDATE, in id order,
through app/batch_lifecycle.apply), so two matrices racing for the same batch on PostgreSQL serialise on
that batch's row: the second sees it locked by the first and skips it with that reason.
"""
from __future__ import annotations

import enum
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from tortoise.connection import get_connection
from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app import clock, database, errors, ledger, money, periods
from app import matrix_totals as mt
from app.batch_lifecycle import TRANSITIONS, Action, BatchStatus, Skipped, StatusChange, apply, refusal
from app.batch_store import BatchRow, store_for
from app.batching import SEGMENT_SEPARATOR
from app.errors import EMPTY_MATRIX, FOUR_EYES, MATRIX_CHANGED, DomainError
from models.matrices import MatrixBatch, Settlement, SettlementMatrix, SettlementTotal
from models.settlement import Batch, SettlementModel

log = logging.getLogger(__name__)

MAX_BATCH_IDS = 10_000
T = TypeVar("T")


class MatrixType(enum.StrEnum):
    DYNAMIC = "DYNAMIC"
    STATIC = "STATIC"


class MatrixStatus(enum.StrEnum):
    OPEN = "OPEN"
    AWAITING_SETTLEMENT = "AWAITING_SETTLEMENT"
    SETTLED = "SETTLED"


@dataclass(frozen=True)
class CriteriaInput:
    model: str
    unit: str
    start: datetime
    end: datetime
    currencies: Sequence[str] | None = None
    segment: Sequence[tuple[str, str]] | None = None
    batch_statuses: Sequence[str] | None = None


@dataclass(frozen=True)
class Criteria:
    model_id: int
    period: periods.Period
    currencies: list[str]
    segment: list[tuple[str, str]]
    segment_key: str | None
    batch_statuses: list[str]


@dataclass
class CommandResult:
    matrix: SettlementMatrix
    changes: list[StatusChange] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    settlement: Settlement | None = None


# -- criteria (pure) ------------------------------------------------------------------------------

def validate_criteria(model: SettlementModel, spec: CriteriaInput) -> Criteria:
    period = periods.validate_period(spec.unit, spec.start, spec.end, model.batch_interval_seconds)
    currencies: list[str] = []
    for index, code in enumerate(spec.currencies or []):
        try:
            money.currency_scale(code)
        except DomainError as exc:
            raise exc.at("input", "currencies", str(index)) from None
        if model.currencies and code not in model.currencies:
            raise DomainError(errors.CURRENCY_NOT_ACCEPTED, f"settlement model {model.name} does not accept {code}",
                              ["input", "currencies", str(index)])
        if code not in currencies:
            currencies.append(code)
    segment_by = list(model.segment_by or [])
    given = dict(spec.segment or [])
    if len(given) != len(spec.segment or []):
        raise DomainError(errors.VALIDATION, "a segment key appears twice", ["input", "segment"])
    segment: list[tuple[str, str]] = []
    segment_key: str | None = None
    if given:
        # A segment names one combination of the model's segmentBy values (as SettlementModel.segments lists).
        if set(given) != set(segment_by):
            raise DomainError(errors.VALIDATION, f"segment must give a value for each of the model's segmentBy "
                              f"keys ({', '.join(segment_by) or 'none'})", ["input", "segment"])
        segment = [(key, given[key]) for key in segment_by]
        segment_key = SEGMENT_SEPARATOR.join(value for _, value in segment)
    statuses: list[str] = []
    for status in spec.batch_statuses or []:
        if str(status) not in statuses:
            statuses.append(str(status))
    return Criteria(model.id, period, currencies, segment, segment_key, statuses)


def contains(matrix: SettlementMatrix, members: set[int], batch: Batch) -> bool:
    """Whether the matrix holds the batch now: by its criteria while it is a live DYNAMIC matrix, else listed."""
    if not mt.is_live(matrix):
        return batch.id in members or batch.owner_matrix_id == matrix.id
    currencies = mt.split_set(matrix.currencies)
    statuses = mt.split_set(matrix.batch_statuses)
    assert matrix.period_start is not None and matrix.period_end is not None
    return (
        batch.model_id == matrix.model_id  # type: ignore[attr-defined]
        and matrix.period_start <= batch.window_start < matrix.period_end
        and (not currencies or batch.currency in currencies)
        and (matrix.segment_key is None or batch.segment_key == matrix.segment_key)
        and (not statuses or batch.status in statuses)
    )


def criteria_of(matrix: SettlementMatrix) -> tuple[list[str], list[str]]:
    return mt.split_set(matrix.currencies), mt.split_set(matrix.batch_statuses)


# -- reading ---------------------------------------------------------------------------------------

async def get(matrix_id: int) -> SettlementMatrix | None:
    return await SettlementMatrix.get_or_none(id=matrix_id)


async def totals(matrix: SettlementMatrix) -> mt.MatrixTotals:
    return await mt.totals(get_connection("default"), matrix)


def member_query(matrix: SettlementMatrix) -> QuerySet[Batch]:
    """The matrix's batches as a query (for pages of batches)."""
    if mt.is_live(matrix):
        currencies, statuses = criteria_of(matrix)
        query = Batch.filter(model_id=matrix.model_id, window_start__gte=matrix.period_start,  # type: ignore[attr-defined]
                             window_start__lt=matrix.period_end)
        if currencies:
            query = query.filter(currency__in=currencies)
        if matrix.segment_key is not None:
            query = query.filter(segment_key=matrix.segment_key)
        if statuses:
            query = query.filter(status__in=statuses)
        return query
    listed = MatrixBatch.filter(matrix_id=matrix.id).values("batch_id")
    return Batch.filter(Q(owner_matrix_id=matrix.id) | Q(id__in=Subquery(listed)))


async def matrices_containing(batch_ids: Sequence[int]) -> dict[int, list[SettlementMatrix]]:
    """batch id -> the matrices that hold it now (listed, or matching a live DYNAMIC matrix's criteria).

    The hook for live events: which matrices' totals moved when these batches changed."""
    ids = sorted(set(batch_ids))
    found: dict[int, list[SettlementMatrix]] = {i: [] for i in ids}
    if not ids:
        return found
    batches = await Batch.filter(id__in=ids)
    listed: dict[int, set[int]] = defaultdict(set)
    for link in await MatrixBatch.filter(batch_id__in=ids).values("matrix_id", "batch_id"):
        listed[link["matrix_id"]].add(link["batch_id"])
    model_ids = {b.model_id for b in batches}  # type: ignore[attr-defined]
    frozen = set(listed) | {b.owner_matrix_id for b in batches if b.owner_matrix_id is not None}
    candidates = await SettlementMatrix.filter(id__in=list(frozen)) if frozen else []
    live = await SettlementMatrix.filter(type=MatrixType.DYNAMIC, status=MatrixStatus.OPEN,
                                         model_id__in=list(model_ids))
    for matrix in {m.id: m for m in [*candidates, *live]}.values():
        for batch in batches:
            if contains(matrix, listed.get(matrix.id, set()), batch):
                found[batch.id].append(matrix)
    for items in found.values():
        items.sort(key=lambda m: m.id)
    return found


async def open_matrix_ids_containing(batch_ids: Sequence[int]) -> set[int]:
    """The OPEN matrices whose content includes any of these batches (for matrixUpdated)."""
    found = await matrices_containing(batch_ids)
    return {m.id for items in found.values() for m in items if m.status == MatrixStatus.OPEN}


# -- creating and editing --------------------------------------------------------------------------

async def create_dynamic(spec: CriteriaInput, actor: str) -> SettlementMatrix:
    model = await SettlementModel.get_or_none(name=spec.model)
    if model is None:
        raise DomainError(errors.NOT_FOUND, f"no settlement model named {spec.model}", ["input", "model"])
    try:
        criteria = validate_criteria(model, spec)
    except DomainError as exc:
        if exc.field and exc.field[0] == "period":
            raise exc.at("input") from None
        raise
    now = clock.now()
    return await SettlementMatrix.create(
        type=MatrixType.DYNAMIC, status=MatrixStatus.OPEN, model_id=criteria.model_id,
        period_unit=criteria.period.unit.value, period_start=criteria.period.start, period_end=criteria.period.end,
        currencies=mt.join_set(criteria.currencies), batch_statuses=mt.join_set(criteria.batch_statuses),
        segment=[{"key": k, "value": v} for k, v in criteria.segment], segment_key=criteria.segment_key,
        created_at=now, created_by=actor, updated_at=now,
    )


def parse_batch_ids(values: Sequence[str | int]) -> list[int]:
    from app.batches import parse_id

    if len(values) > MAX_BATCH_IDS:
        raise DomainError(errors.VALIDATION, f"at most {MAX_BATCH_IDS} batch ids a call", ["batchIds"])
    ids: dict[int, None] = {}  # ordered, without repeats
    for index, value in enumerate(values):
        try:
            ids[parse_id(value, "batchIds")] = None
        except DomainError as exc:
            raise DomainError(exc.code, exc.message, ["batchIds", str(index)]) from None
    return list(ids)


async def _require_batches(ids: Sequence[int]) -> None:
    existing = set(await Batch.filter(id__in=list(ids)).values_list("id", flat=True))
    missing = [i for i in ids if i not in existing]
    if missing:
        raise DomainError(errors.NOT_FOUND, f"no batch with id {', '.join(map(str, missing[:10]))}", ["batchIds"])


async def create_static(batch_ids: Sequence[str | int], actor: str) -> SettlementMatrix:
    ids = parse_batch_ids(batch_ids)
    now = clock.now()
    async with in_transaction() as conn:
        await _require_batches(ids)
        matrix = await SettlementMatrix.create(type=MatrixType.STATIC, status=MatrixStatus.OPEN, created_at=now,
                                               created_by=actor, updated_at=now)
        await mt.add_members(conn, matrix.id, ids)
    return matrix


async def _locked_matrix(matrix_id: int) -> SettlementMatrix:
    matrix = await SettlementMatrix.filter(id=matrix_id).select_for_update().first()
    if matrix is None:
        raise DomainError(errors.NOT_FOUND, f"no matrix with id {matrix_id}", ["id"])
    return matrix


def _require_status(matrix: SettlementMatrix, allowed: Sequence[MatrixStatus], doing: str) -> None:
    if matrix.status not in allowed:
        raise DomainError(errors.INVALID_TRANSITION,
                          f"cannot {doing} matrix {matrix.id}: it is {matrix.status} "
                          f"(allowed when {' or '.join(allowed)})", ["id"])


async def _touch(matrix: SettlementMatrix, now: datetime, **changes: Any) -> None:
    for name, value in changes.items():
        setattr(matrix, name, value)
    matrix.version += 1
    matrix.updated_at = now
    await matrix.save(update_fields=[*changes, "version", "updated_at"])


async def edit_static(matrix_id: int, batch_ids: Sequence[str | int], add: bool) -> CommandResult:
    ids = parse_batch_ids(batch_ids)
    async with in_transaction() as conn:
        matrix = await _locked_matrix(matrix_id)
        if matrix.type != MatrixType.STATIC:
            raise DomainError(errors.VALIDATION, f"matrix {matrix_id} is DYNAMIC: its criteria choose its batches",
                              ["id"])
        _require_status(matrix, [MatrixStatus.OPEN], "change the batches of")
        present = set(await MatrixBatch.filter(matrix_id=matrix.id, batch_id__in=ids)
                      .values_list("batch_id", flat=True))
        skipped: list[Skipped] = []
        if add:
            await _require_batches(ids)
            fresh = [i for i in ids if i not in present]
            skipped = [Skipped(i, "already in the matrix") for i in ids if i in present]
            await mt.add_members(conn, matrix.id, fresh)
            changed = bool(fresh)
        else:
            gone = [i for i in ids if i in present]
            skipped = [Skipped(i, "not in the matrix") for i in ids if i not in present]
            if gone:
                await MatrixBatch.filter(matrix_id=matrix.id, batch_id__in=gone).delete()
            changed = bool(gone)
        if changed:
            await _touch(matrix, clock.now())
    return CommandResult(matrix, skipped=skipped)


# -- commands --------------------------------------------------------------------------------------

def _skip_reason(action: Action, row: BatchRow, matrix_id: int) -> str | None:
    """Why a matrix-wide `action` leaves this batch alone; None when it applies (or the batch is there already)."""
    rule = TRANSITIONS[action]
    if row.status == rule.target and (not rule.owner_only or row.owner_matrix_id == matrix_id):
        return None
    return refusal(action, row.status, row.owner_matrix_id, matrix_id)


async def _matrix_wide(matrix_id: int, action: Action, actor: str, reason: str | None) -> CommandResult:
    async def work() -> CommandResult:
        now = clock.now()
        async with in_transaction() as conn:
            store = store_for(conn)
            matrix = await _locked_matrix(matrix_id)
            ids = await mt.member_ids(conn, matrix)
            rows = await store.lock_batches(ids, exclusive=True)
            rule = TRANSITIONS[action]
            targets = [i for i in ids if i in rows and rows[i].status in rule.sources]
            chosen = set(targets)
            skipped = [Skipped(i, why) for i in ids if i in rows and i not in chosen
                       and (why := _skip_reason(action, rows[i], matrix.id))]
            changes, refused = await apply(store, targets, action, actor=actor, reason=reason, now=now,
                                           matrix_id=matrix.id, locked=rows)
            return CommandResult(matrix, changes, skipped + refused)
    return await database.retrying_deadlocks(work, "matrix command")


async def close_matrix(matrix_id: int, actor: str) -> CommandResult:
    return await _matrix_wide(matrix_id, Action.CLOSE, actor, f"matrix {matrix_id} closed")


async def dispute_matrix(matrix_id: int, actor: str, reason: str | None) -> CommandResult:
    _check_reason(reason)
    return await _matrix_wide(matrix_id, Action.DISPUTE, actor, reason or f"matrix {matrix_id} disputed")


def _unsettleable(row: BatchRow, matrix_id: int) -> str:
    if row.status == BatchStatus.IN_DISPUTE:
        return "IN_DISPUTE: resolve the dispute before settling it"
    if row.status == BatchStatus.SETTLED:
        return f"SETTLED already, by matrix {row.owner_matrix_id}"
    if row.status == BatchStatus.AWAITING_SETTLEMENT and row.owner_matrix_id != matrix_id:
        return f"AWAITING_SETTLEMENT: locked by matrix {row.owner_matrix_id}"
    return f"{row.status}: not locked by this matrix when its settlement was requested"


def _check_reason(reason: str | None) -> None:
    if reason is not None and len(reason) > 512:
        raise DomainError(errors.VALIDATION, "reason is longer than 512 characters", ["reason"])


async def _check_checksum(conn: Any, matrix: SettlementMatrix, expected: str | None) -> None:
    if expected is None:
        return
    current = (await mt.totals(conn, matrix)).checksum
    if current != expected:
        raise DomainError(MATRIX_CHANGED, f"matrix {matrix.id} changed since checksum {expected} was read "
                          f"(now {current}): read it again", ["expectedChecksum"])


async def _request(conn: Any, matrix: SettlementMatrix, expected: str | None, actor: str, now: datetime
                   ) -> CommandResult:
    """Close the OPEN batches, lock the settleable ones to this matrix and freeze its batch set."""
    store = store_for(conn)
    ids = await mt.member_ids(conn, matrix)
    rows = await store.lock_batches(ids, exclusive=True)  # every member, in id order: racing matrices queue here
    await _check_checksum(conn, matrix, expected)
    settleable = [i for i in ids if i in rows and mt.is_settleable(matrix.status, rows[i].status, False)]
    chosen = set(settleable)
    skipped = [Skipped(i, _unsettleable(rows[i], matrix.id)) for i in ids if i in rows and i not in chosen]
    if not settleable:
        raise DomainError(EMPTY_MATRIX, f"matrix {matrix.id} has no batch to settle ({len(ids)} batch(es), "
                          f"none OPEN or CLOSED)", ["id"])
    reason = f"settlement requested in matrix {matrix.id}"
    opened = [i for i in settleable if rows[i].status == BatchStatus.OPEN]
    closed, _ = await apply(store, opened, Action.CLOSE, actor=actor, reason=reason, now=now, matrix_id=matrix.id,
                            locked=rows)
    for change in closed:  # still locked by this transaction, now CLOSED
        row = rows[change.batch_id]
        rows[change.batch_id] = BatchRow(row.id, change.to_status, row.sequence, row.owner_matrix_id)
    locked, refused = await apply(store, settleable, Action.LOCK, actor=actor, reason=reason, now=now,
                                  matrix_id=matrix.id, locked=rows)
    if matrix.type == MatrixType.DYNAMIC:  # freeze the set: the locked batches are known by their owner
        await mt.add_members(conn, matrix.id, [i for i in ids if i not in chosen])
    await _touch(matrix, now, status=MatrixStatus.AWAITING_SETTLEMENT.value, requested_by=actor, requested_at=now)
    return CommandResult(matrix, closed + locked, skipped + refused)


async def request_settlement(matrix_id: int, expected: str | None, actor: str) -> CommandResult:
    async def work() -> CommandResult:
        async with in_transaction() as conn:
            matrix = await _locked_matrix(matrix_id)
            _require_status(matrix, [MatrixStatus.OPEN], "request settlement of")
            return await _request(conn, matrix, expected, actor, clock.now())
    return await database.retrying_deadlocks(work, "matrix command")


async def cancel_settlement(matrix_id: int, actor: str) -> CommandResult:
    async def work() -> CommandResult:
        now = clock.now()
        async with in_transaction() as conn:
            store = store_for(conn)
            matrix = await _locked_matrix(matrix_id)
            _require_status(matrix, [MatrixStatus.AWAITING_SETTLEMENT], "cancel the settlement of")
            owned = await mt.owned_ids(conn, matrix.id, BatchStatus.AWAITING_SETTLEMENT)
            changes, skipped = await apply(store, owned, Action.UNLOCK, actor=actor,
                                           reason=f"settlement of matrix {matrix.id} cancelled", now=now,
                                           matrix_id=matrix.id)
            if matrix.type == MatrixType.DYNAMIC:  # back to its criteria: batches created since join it again
                await MatrixBatch.filter(matrix_id=matrix.id).delete()
            await _touch(matrix, now, status=MatrixStatus.OPEN.value, requested_by=None, requested_at=None)
            return CommandResult(matrix, changes, skipped)
    return await database.retrying_deadlocks(work, "matrix command")


async def settle_matrix(matrix_id: int, expected: str | None, actor: str, four_eyes: bool) -> CommandResult:
    async def work() -> CommandResult:
        now = clock.now()
        async with in_transaction() as conn:
            store = store_for(conn)
            matrix = await _locked_matrix(matrix_id)
            if matrix.status == MatrixStatus.SETTLED:
                raise DomainError(errors.INVALID_TRANSITION, f"matrix {matrix.id} is SETTLED already: a matrix "
                                  "is settled once", ["id"])
            result = CommandResult(matrix)
            if matrix.status == MatrixStatus.OPEN:
                if four_eyes:
                    raise DomainError(errors.INVALID_TRANSITION, f"matrix {matrix.id} is OPEN: with four-eyes on, "
                                      "settlement must be requested first (by another user)", ["id"])
                result = await _request(conn, matrix, expected, actor, now)
            else:
                if four_eyes and matrix.requested_by == actor:
                    raise DomainError(FOUR_EYES, f"{actor} requested this settlement; four-eyes needs another "
                                      "user to settle it", ["id"])
                # What it locked cannot change (only this matrix's commands move those batches, and its row is
                # locked): no need to lock the other members, which it will not touch; they are reported.
                await _check_checksum(conn, matrix, expected)
                result.skipped = [Skipped(r[0], _unsettleable(BatchRow(*r), matrix.id))
                                  for r in await mt.unowned_members(conn, matrix)]
            awaiting = BatchStatus.AWAITING_SETTLEMENT
            owned_rows = await mt.owned_batches(conn, matrix.id, awaiting)
            if not owned_rows:
                raise DomainError(EMPTY_MATRIX, f"matrix {matrix.id} holds no batch to settle", ["id"])
            owned = [batch_id for batch_id, _ in owned_rows]
            # Only this matrix's commands move the batches it locked, and its row is locked: they are as read,
            # and the UPDATE takes their row locks (in id order) without a separate locking pass.
            rows = {i: BatchRow(i, awaiting, sequence, matrix.id) for i, sequence in owned_rows}
            # One pass over the settled batches' accounts gives both the report and the rollup move.
            moves = await mt.bucket_sums(conn, owned)
            settled_totals = mt.participant_totals(moves)
            settled, refused = await apply(store, owned, Action.SETTLE, actor=actor, reason=f"settled in matrix "
                                           f"{matrix.id}", now=now, matrix_id=matrix.id, move_totals=False,
                                           locked=rows)
            if refused:  # cannot happen: the batches are locked to this matrix, which is locked too
                raise DomainError(errors.INTERNAL, f"matrix {matrix.id}: {len(refused)} locked batch(es) refused")
            await mt.apply_bucket_moves(conn, moves, BatchStatus.SETTLED.value)
            settlement = await Settlement.create(matrix_id=matrix.id, requested_by=matrix.requested_by,
                                                 settled_by=actor, settled_at=now)
            await SettlementTotal.bulk_create([
                SettlementTotal(settlement_id=settlement.id, participant_id=t.participant_id, currency=t.currency,
                                debit=t.debit, credit=t.credit) for t in settled_totals
            ])
            await ledger.post_settlement(settlement.id, matrix.id, settled_totals, now)
            await _touch(matrix, now, status=MatrixStatus.SETTLED.value)
            result.changes += settled
            result.skipped += refused
            result.settlement = settlement
            return result
    return await database.retrying_deadlocks(work, "matrix command")


# -- settlement reports ----------------------------------------------------------------------------

async def settlement_of(matrix_id: int) -> Settlement | None:
    return await Settlement.get_or_none(matrix_id=matrix_id)


async def settlement_totals(settlement_id: int) -> list[mt.AccountTotal]:
    rows = await SettlementTotal.filter(settlement_id=settlement_id).order_by("participant_id", "currency")
    return [mt.AccountTotal(r.participant_id, r.currency, r.debit, r.credit) for r in rows]


async def settled_batches(matrix_id: int) -> list[Batch]:
    return await Batch.filter(owner_matrix_id=matrix_id, status=BatchStatus.SETTLED).order_by("id")
