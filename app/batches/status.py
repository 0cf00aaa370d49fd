"""Batch status (SPEC §5): the statuses, the one table of allowed transitions, and what a change is.

Pure: applying a transition to stored batches is app/batches/lifecycle.py.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


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


# One definition of a status change: the row of a batch's history and the event published after commit (SPEC §8).
# eq=False: events compare by identity, so the API layer can key per-event state (fresh loaders) on them (weakly).
# Not frozen: a matrix settling 86,400 batches builds one per batch, and a frozen dataclass's __init__ costs
# several times as much.
@dataclass(eq=False, slots=True, weakref_slot=True)
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


NO_SUCH_BATCH = "no such batch"


def refusal(action: Action, status: str, owner_matrix_id: int | None, matrix_id: int | None) -> str | None:
    """Why `action` may not apply to a batch in `status`; None when it may."""
    rule = TRANSITIONS[action]
    if status not in rule.sources:
        allowed = ", ".join(sorted(rule.sources))
        return f"cannot {action.value} a batch that is {status} (allowed from {allowed})"
    if rule.owner_only and owner_matrix_id != matrix_id:
        return f"cannot {action.value}: the batch is locked by matrix {owner_matrix_id}"
    return None


def owner_after(action: Action, matrix_id: int | None) -> int | None:
    """The owner a batch has after `action`: the matrix that locked it, and the one that settled it."""
    target = TRANSITIONS[action].target
    return matrix_id if target in (BatchStatus.AWAITING_SETTLEMENT, BatchStatus.SETTLED) else None
