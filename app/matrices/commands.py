"""Settlement matrix commands (SPEC §6, §7): create, edit, close, dispute, request, cancel and settle.

A DYNAMIC matrix is its criteria: while it is OPEN its batches are every batch that matches them now, so batches
created later join it. requestSettlement freezes the set (the members are written to matrix_batch). A STATIC
matrix lists its batches. Totals are never stored: app/matrices/totals.py sums them on read.

Every command is one audited transaction (app/audit.py). It locks the matrix row, then its batches (FOR UPDATE,
in id order, through app/batches/lifecycle.apply), so two matrices racing for the same batch on PostgreSQL
serialise on that batch's row: the second sees it locked by the first and skips it with that reason.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app import audit
from app.auth import Principal
from app.batches.lifecycle import apply, skips
from app.batches.rollup import move_rows, participant_totals
from app.batches.status import TRANSITIONS, Action, BatchStatus, Skipped, StatusChange, refusal
from app.batches.store import BatchStore, LockedBatch, LockedRows
from app.core import clock, errors
from app.core.checks import check_reason, parse_id
from app.core.errors import EMPTY_MATRIX, FOUR_EYES, MATRIX_CHANGED, DomainError
from app.core.money import format_minor
from app.core.turns import bulk_work
from app.db import outbox
from app.db.columns import fits
from app.matrices import ledger
from app.matrices.rules import (
    CriteriaInput,
    MatrixStatus,
    MatrixType,
    is_settleable,
    join_set,
    parse_batch_ids,
    unsettleable,
    validate_criteria,
)
from app.matrices.store import MatrixStore
from app.matrices.totals import totals
from models.matrices import MatrixBatch, Settlement, SettlementMatrix, SettlementTotal
from models.settlement import Batch, SettlementModel


@dataclass
class CommandResult:
    matrix: SettlementMatrix
    changes: list[StatusChange] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    settlement: Settlement | None = None


@dataclass(frozen=True, eq=False)
class MatrixChanged:
    """The event of a command that changed the matrix itself (its status, or the batches of a STATIC matrix)."""

    matrix_id: int


# -- creating and editing --------------------------------------------------------------------------

async def create_dynamic(spec: CriteriaInput, caller: Principal | None) -> SettlementMatrix:
    command = audit.Command(caller, "createMatrix", spec.model)

    async def work(conn: Any) -> SettlementMatrix:
        model = await SettlementModel.get_or_none(name=spec.model) if fits(SettlementModel, "name", spec.model) \
            else None
        if model is None:
            raise DomainError(errors.NOT_FOUND, f"no settlement model named {spec.model}", ["input", "model"])
        criteria = validate_criteria(model, spec)
        now = clock.now()
        matrix = await SettlementMatrix.create(
            type=MatrixType.DYNAMIC, status=MatrixStatus.OPEN, model_id=criteria.model_id,
            period_unit=criteria.period.unit.value, period_start=criteria.period.start,
            period_end=criteria.period.end, currencies=join_set(criteria.currencies),
            batch_statuses=join_set(criteria.batch_statuses),
            segment=[{"key": k, "value": v} for k, v in criteria.segment], segment_key=criteria.segment_key,
            created_at=now, created_by=command.actor, updated_at=now,
        )
        command.note(matrix=matrix.id)
        return matrix

    return await audit.run(command, work)


async def create_static(batch_ids: Sequence[str | int], caller: Principal | None) -> SettlementMatrix:
    command = audit.Command(caller, "createStaticMatrix", f"{len(batch_ids)} batch(es)")

    async def work(conn: Any) -> SettlementMatrix:
        ids = parse_batch_ids(batch_ids)
        await _require_batches(ids)
        now = clock.now()
        matrix = await SettlementMatrix.create(type=MatrixType.STATIC, status=MatrixStatus.OPEN, created_at=now,
                                               created_by=command.actor, updated_at=now)
        await MatrixStore.on(conn).add_members(matrix.id, ids)
        command.note(matrix=matrix.id)
        return matrix

    return await audit.run(command, work)


async def edit_static(matrix_id: str, batch_ids: Sequence[str | int], add: bool,
                      caller: Principal | None) -> CommandResult:
    """Add batches to (or remove them from) an OPEN STATIC matrix."""
    command = audit.Command(caller, "addMatrixBatches" if add else "removeMatrixBatches", matrix_id)

    async def work(conn: Any) -> CommandResult:
        ids = parse_batch_ids(batch_ids)
        matrix = await _locked_matrix(matrix_id)
        if matrix.type != MatrixType.STATIC:
            raise DomainError(errors.VALIDATION, f"matrix {matrix.id} is DYNAMIC: its criteria choose its batches",
                              ["id"])
        _require_status(matrix, [MatrixStatus.OPEN], "change the batches of")
        present = set(await MatrixBatch.filter(matrix_id=matrix.id, batch_id__in=ids)
                      .values_list("batch_id", flat=True))
        if add:
            await _require_batches(ids)
            changed = [i for i in ids if i not in present]
            skipped = [Skipped(i, "already in the matrix") for i in ids if i in present]
            await MatrixStore.on(conn).add_members(matrix.id, changed)
        else:
            changed = [i for i in ids if i in present]
            skipped = [Skipped(i, "not in the matrix") for i in ids if i not in present]
            if changed:
                await MatrixBatch.filter(matrix_id=matrix.id, batch_id__in=changed).delete()
        if changed:
            await _touch(matrix, clock.now())
        return CommandResult(matrix, skipped=skipped)

    return await audit.run(command, work)


async def _require_batches(ids: Sequence[int]) -> None:
    existing = set(await Batch.filter(id__in=list(ids)).values_list("id", flat=True))
    missing = [i for i in ids if i not in existing]
    if missing:
        raise DomainError(errors.NOT_FOUND, f"no batch with id {', '.join(map(str, missing[:10]))}", ["batchIds"])


async def _locked_matrix(matrix_id: str) -> SettlementMatrix:
    matrix = await SettlementMatrix.filter(id=parse_id(matrix_id)).select_for_update().first()
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


async def _bulk(command: audit.Command, work: Any) -> CommandResult:
    """A matrix-wide command (it may move 86,400 batches): audit.run, collecting garbage less often meanwhile."""
    with bulk_work():
        return await audit.run(command, work)


def _noted(command: audit.Command, result: CommandResult) -> CommandResult:
    command.note(changed=len(result.changes), skipped=len(result.skipped))
    return result


# -- matrix-wide batch commands --------------------------------------------------------------------

def _skip_reason(action: Action, row: LockedBatch, matrix_id: int) -> str | None:
    """Why a matrix-wide `action` leaves this batch alone; None when it applies (or the batch is there already)."""
    rule = TRANSITIONS[action]
    if row.status == rule.target and (not rule.owner_only or row.owner_matrix_id == matrix_id):
        return None
    return refusal(action, row.status, row.owner_matrix_id, matrix_id)


@dataclass
class Members:
    """A matrix's members as one command sees them: those it acts on, those it leaves alone (skipped with a reason,
    or gone), and the skips it reports."""

    chosen: list[int] = field(default_factory=list)
    others: list[int] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


async def _members(rows: LockedRows, chosen: Callable[[LockedBatch], bool],
                   why: Callable[[LockedBatch], str | None]) -> Members:
    """Split the (locked) members, group by group of one status and owner (86,400 batches are a few groups); each
    list in ascending id order."""
    members = Members()
    for group in rows.groups:
        row = LockedBatch(group.ids[0], group.status, 0, group.owner_matrix_id)  # the group's status and owner
        if chosen(row):
            members.chosen += group.ids
            continue
        members.others += group.ids
        reason = why(row)
        if reason:  # one each: a matrix over a day another one locked reports 86,400
            members.skipped += await skips(group.ids, reason)
    members.chosen.sort()
    members.others.sort()
    members.skipped.sort(key=lambda s: s.batch_id)
    return members


async def _matrix_wide(command: audit.Command, matrix_id: str, action: Action, reason: str | None,
                       done: str) -> CommandResult:
    """`action` on every batch of the matrix that allows it; `done` words the default reason ("closed")."""
    async def work(conn: Any) -> CommandResult:
        check_reason(reason)
        store = BatchStore.on(conn)
        matrix = await _locked_matrix(matrix_id)
        rows = await MatrixStore.on(conn).lock_members(matrix)
        rule = TRANSITIONS[action]
        members = await _members(rows, lambda row: row.status in rule.sources,
                                 lambda row: _skip_reason(action, row, matrix.id))
        changes, refused = await apply(store, members.chosen, action, actor=command.actor,
                                       reason=reason or f"matrix {matrix.id} {done}",
                                       now=clock.now(), matrix_id=matrix.id, locked=rows)
        return _noted(command, CommandResult(matrix, changes, members.skipped + refused))

    return await _bulk(command, work)


async def close_matrix(matrix_id: str, caller: Principal | None) -> CommandResult:
    return await _matrix_wide(audit.Command(caller, "closeMatrix", matrix_id), matrix_id, Action.CLOSE, None,
                              "closed")


async def dispute_matrix(matrix_id: str, caller: Principal | None, reason: str | None = None) -> CommandResult:
    return await _matrix_wide(audit.Command(caller, "disputeMatrix", matrix_id), matrix_id, Action.DISPUTE, reason,
                              "disputed")


# -- settlement (SPEC §6, §7) -----------------------------------------------------------------------

async def _check_checksum(conn: Any, matrix: SettlementMatrix, expected: str | None) -> None:
    if expected is None:
        return
    current = (await totals(conn, matrix)).checksum
    if current != expected:
        raise DomainError(MATRIX_CHANGED, f"matrix {matrix.id} changed since checksum {expected} was read "
                          f"(now {current}): read it again", ["expectedChecksum"])


async def _request(conn: Any, matrix: SettlementMatrix, expected: str | None, actor: str, now: datetime
                   ) -> CommandResult:
    """Close the OPEN batches, lock the settleable ones to this matrix and freeze its batch set."""
    store = BatchStore.on(conn)
    rows = await MatrixStore.on(conn).lock_members(matrix)  # every member, in id order: racing matrices queue here
    await _check_checksum(conn, matrix, expected)
    members = await _members(rows, lambda row: is_settleable(matrix.status, row.status, False),
                             lambda row: unsettleable(row.status, row.owner_matrix_id, matrix.id))
    settleable = members.chosen
    if not settleable:
        raise DomainError(EMPTY_MATRIX, f"matrix {matrix.id} has no batch to settle ({len(rows)} batch(es), "
                          f"none OPEN or CLOSED)", ["id"])
    reason = f"settlement requested in matrix {matrix.id}"
    opened = rows.ids_in(BatchStatus.OPEN)  # all settleable
    closed, _ = await apply(store, opened, Action.CLOSE, actor=actor, reason=reason, now=now, matrix_id=matrix.id,
                            locked=rows)
    rows = rows.moved([change.batch_id for change in closed], BatchStatus.CLOSED)  # still locked by this transaction
    locked, refused = await apply(store, settleable, Action.LOCK, actor=actor, reason=reason, now=now,
                                  matrix_id=matrix.id, locked=rows, owned=True)
    if matrix.type == MatrixType.DYNAMIC:  # freeze the set: the locked batches are known by their owner
        await MatrixStore.on(conn).add_members(matrix.id, members.others)
    await _touch(matrix, now, status=MatrixStatus.AWAITING_SETTLEMENT.value, requested_by=actor, requested_at=now)
    _publish(conn, matrix, "requested", actor, now)
    return CommandResult(matrix, closed + locked, members.skipped + refused)


async def request_settlement(matrix_id: str, expected: str | None, caller: Principal | None) -> CommandResult:
    command = audit.Command(caller, "requestSettlement", matrix_id)

    async def work(conn: Any) -> CommandResult:
        matrix = await _locked_matrix(matrix_id)
        _require_status(matrix, [MatrixStatus.OPEN], "request settlement of")
        return _noted(command, await _request(conn, matrix, expected, command.actor, clock.now()))

    return await _bulk(command, work)


async def cancel_settlement(matrix_id: str, caller: Principal | None) -> CommandResult:
    command = audit.Command(caller, "cancelSettlement", matrix_id)

    async def work(conn: Any) -> CommandResult:
        now = clock.now()
        matrix = await _locked_matrix(matrix_id)
        _require_status(matrix, [MatrixStatus.AWAITING_SETTLEMENT], "cancel the settlement of")
        owned = await MatrixStore.on(conn).owned_batches(matrix, BatchStatus.AWAITING_SETTLEMENT)
        changes, skipped = await apply(BatchStore.on(conn), owned, Action.UNLOCK, actor=command.actor,
                                       reason=f"settlement of matrix {matrix.id} cancelled", now=now,
                                       matrix_id=matrix.id)
        if matrix.type == MatrixType.DYNAMIC:  # back to its criteria: batches created since join it again
            await MatrixBatch.filter(matrix_id=matrix.id).delete()
        await _touch(matrix, now, status=MatrixStatus.OPEN.value, requested_by=None, requested_at=None)
        _publish(conn, matrix, "cancelled", command.actor, now)
        command.note(changed=len(changes))
        return CommandResult(matrix, changes, skipped)

    return await _bulk(command, work)


async def settle_matrix(matrix_id: str, expected: str | None, caller: Principal | None,
                        four_eyes: bool) -> CommandResult:
    command = audit.Command(caller, "settleMatrix", matrix_id)

    async def work(conn: Any) -> CommandResult:
        actor, now = command.actor, clock.now()
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
            result.skipped = [Skipped(m.id, unsettleable(m.status, m.owner_matrix_id, matrix.id))
                              for m in await MatrixStore.on(conn).unowned_members(matrix)]
        await _settle_locked(conn, matrix, result, actor, now)
        command.note(settlement=result.settlement.id if result.settlement else None, settled=len(result.changes))
        return result

    return await _bulk(command, work)


async def _settle_locked(conn: Any, matrix: SettlementMatrix, result: CommandResult, actor: str,
                         now: datetime) -> None:
    """Settle the batches the (locked) matrix has locked: their status, the rollup, the report and the ledger."""
    store = BatchStore.on(conn)
    awaiting = BatchStatus.AWAITING_SETTLEMENT
    # Only this matrix's commands move the batches it locked, and its row is locked: they are as read, and the
    # UPDATE takes their row locks (in id order) without a separate locking pass.
    rows = await MatrixStore.on(conn).owned_rows(matrix, awaiting)
    owned = sorted(rows)
    if not owned:
        raise DomainError(EMPTY_MATRIX, f"matrix {matrix.id} holds no batch to settle", ["id"])
    # One pass over the settled batches' accounts gives both the report and the rollup move.
    moves = await store.bucket_sums(owned, rows.rollup_counts())
    settled_totals = participant_totals(moves)
    settled, refused = await apply(store, owned, Action.SETTLE, actor=actor, reason=f"settled in matrix {matrix.id}",
                                   now=now, matrix_id=matrix.id, move_totals=False, locked=rows, owned=True)
    if refused:  # cannot happen: the batches are locked to this matrix, which is locked too
        raise DomainError(errors.INTERNAL, f"matrix {matrix.id}: {len(refused)} locked batch(es) refused")
    await store.apply_bucket_moves(move_rows(moves, BatchStatus.SETTLED.value))
    settlement = await Settlement.create(matrix_id=matrix.id, requested_by=matrix.requested_by, settled_by=actor,
                                         settled_at=now)
    await SettlementTotal.bulk_create([
        SettlementTotal(settlement_id=settlement.id, participant_id=t.participant_id, currency=t.currency,
                        debit=t.debit, credit=t.credit) for t in settled_totals
    ])
    await ledger.post_settlement(settlement.id, matrix.id, settled_totals, now)
    await _touch(matrix, now, status=MatrixStatus.SETTLED.value)
    result.changes += settled
    result.settlement = settlement
    # The synchronous settlement report's content (app/matrices/reports.py), as settleMatrix answers it.
    _publish(conn, matrix, "settled", actor, now, settlement={
        "id": settlement.id, "settledAt": now.isoformat(), "requestedBy": matrix.requested_by, "settledBy": actor,
        "participants": [{"participantId": t.participant_id, "currency": t.currency,
                          "debit": format_minor(t.debit, t.currency), "credit": format_minor(t.credit, t.currency),
                          "net": format_minor(t.credit - t.debit, t.currency)}
                         for t in sorted(settled_totals, key=lambda t: (t.participant_id, t.currency))],
        "batchCount": len(owned)})


def _publish(conn: Any, matrix: SettlementMatrix, event: str, actor: str, now: datetime, **extra: Any) -> None:
    """Stage a matrix event for the outbox (SPEC §13), in the command's transaction."""
    outbox.stage(conn, "matrix", {"event": event, "matrixId": matrix.id, "at": now.isoformat(), "actor": actor,
                                  **extra})
