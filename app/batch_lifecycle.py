"""Batch status (SPEC §5): the one table of allowed transitions and the one function that applies them."""
from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from app import errors
from app.batch_store import BatchRow, BatchStore
from app.errors import DomainError
from app.matrix_totals import apply_bucket_moves, bucket_sums


class BatchStatus(enum.StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    IN_DISPUTE = "IN_DISPUTE"
    AWAITING_SETTLEMENT = "AWAITING_SETTLEMENT"
    SETTLED = "SETTLED"


class Action(enum.StrEnum):
    CLOSE = "close"
    DISPUTE = "dispute"
    RESOLVE = "resolve dispute"
    LOCK = "lock"
    UNLOCK = "unlock"
    SETTLE = "settle"
    REFUND = "refund"


@dataclass(frozen=True)
class Transition:
    sources: frozenset[BatchStatus]
    target: BatchStatus
    owner_only: bool = False  # only the matrix that locked the batch may do it


S = BatchStatus
TRANSITIONS: dict[Action, Transition] = {
    Action.CLOSE: Transition(frozenset({S.OPEN}), S.CLOSED),
    Action.DISPUTE: Transition(frozenset({S.OPEN, S.CLOSED}), S.IN_DISPUTE),
    Action.RESOLVE: Transition(frozenset({S.IN_DISPUTE}), S.CLOSED),
    Action.LOCK: Transition(frozenset({S.OPEN, S.CLOSED}), S.AWAITING_SETTLEMENT),
    Action.UNLOCK: Transition(frozenset({S.AWAITING_SETTLEMENT}), S.CLOSED, owner_only=True),
    Action.SETTLE: Transition(frozenset({S.AWAITING_SETTLEMENT}), S.SETTLED, owner_only=True),
    # A refund of a transfer in a disputed batch posts into it and closes it again (SPEC §4).
    Action.REFUND: Transition(frozenset({S.IN_DISPUTE}), S.CLOSED),
}


# Not frozen: a matrix settling 86,400 batches builds one per batch, and a frozen dataclass's __init__
# costs several times as much.
@dataclass(slots=True)
class StatusChange:
    batch_id: int
    from_status: str | None
    to_status: str
    at: datetime
    actor: str | None
    reason: str | None
    matrix_id: int | None


@dataclass(frozen=True)
class Skipped:
    batch_id: int
    reason: str


def refusal(action: Action, status: str, owner_matrix_id: int | None, matrix_id: int | None) -> str | None:
    """Why `action` may not apply to a batch in `status`; None when it may."""
    rule = TRANSITIONS[action]
    if status not in rule.sources:
        allowed = ", ".join(sorted(rule.sources))
        return f"cannot {action.value} a batch that is {status} (allowed from {allowed})"
    if rule.owner_only and owner_matrix_id != matrix_id:
        return f"cannot {action.value}: the batch is locked by matrix {owner_matrix_id}"
    return None


async def apply(
    store: BatchStore,
    batch_ids: Sequence[int],
    action: Action,
    *,
    actor: str | None,
    reason: str | None,
    now: datetime,
    matrix_id: int | None = None,
    move_totals: bool = True,
    locked: Mapping[int, BatchRow] | None = None,
) -> tuple[list[StatusChange], list[Skipped]]:
    """Apply `action` to every batch that allows it, under row locks, inside the caller's transaction.

    Batches that do not allow it are returned as skipped with the reason; nothing is skipped silently.
    `locked`: the rows as they are, held by the caller: locked FOR UPDATE in this transaction (a matrix
    locks all its batches first), or batches only the caller's locked matrix may move (its own
    AWAITING_SETTLEMENT ones), whose row locks the update takes; without it the batches are locked here.
    """
    rule = TRANSITIONS[action]
    if locked is None:
        locked = await store.lock_batches(batch_ids, exclusive=True)
    changes: list[StatusChange] = []
    skipped: list[Skipped] = []
    moving: list[int] = []
    sources: list[str] = []
    for batch_id in batch_ids:
        row = locked.get(batch_id)
        if row is None:
            skipped.append(Skipped(batch_id, "no such batch"))
            continue
        why = refusal(action, row.status, row.owner_matrix_id, matrix_id)
        if why:
            skipped.append(Skipped(batch_id, why))
            continue
        changes.append(StatusChange(batch_id, row.status, rule.target, now, actor, reason, matrix_id))
        moving.append(batch_id)
        sources.append(row.status)
    if changes:
        owner = matrix_id if rule.target is BatchStatus.AWAITING_SETTLEMENT else None
        if rule.target is BatchStatus.SETTLED:
            owner = matrix_id  # a settled batch remembers the matrix that settled it
        # The hourly rollup of matrix totals follows the batches from their old status to the new one
        # (unless the caller moves them: settlement reuses the sums for its report).
        moves = await bucket_sums(store.conn, moving) if move_totals else []
        await store.change_status(moving, sources, rule.target, owner, now, actor, reason, matrix_id)
        await apply_bucket_moves(store.conn, moves, rule.target)
    return changes, skipped


async def apply_one(
    store: BatchStore,
    batch_id: int,
    action: Action,
    *,
    actor: str | None,
    reason: str | None,
    now: datetime,
    matrix_id: int | None = None,
) -> StatusChange:
    changes, skipped = await apply(store, [batch_id], action, actor=actor, reason=reason, now=now,
                                   matrix_id=matrix_id)
    if skipped:
        code = errors.NOT_FOUND if skipped[0].reason == "no such batch" else errors.INVALID_TRANSITION
        raise DomainError(code, skipped[0].reason, ["ref"])
    return changes[0]
