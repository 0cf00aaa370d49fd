"""The §5 transition table: every (action, status) pair, allowed or refused with a reason naming the status."""
from __future__ import annotations

import pytest

from app.batches.status import TRANSITIONS, Action, BatchStatus, owner_after, refusal

S = BatchStatus
# SPEC §5, written out independently of app/batches/status.py: action -> (from statuses, to status, owner only)
TABLE = {
    Action.CLOSE: ({S.OPEN}, S.CLOSED, False),
    Action.DISPUTE: ({S.OPEN, S.CLOSED}, S.IN_DISPUTE, False),
    Action.RESOLVE: ({S.IN_DISPUTE}, S.CLOSED, False),
    Action.LOCK: ({S.OPEN, S.CLOSED}, S.AWAITING_SETTLEMENT, False),
    Action.UNLOCK: ({S.AWAITING_SETTLEMENT}, S.CLOSED, True),
    Action.SETTLE: ({S.AWAITING_SETTLEMENT}, S.SETTLED, True),
    Action.REFUND: ({S.IN_DISPUTE}, S.CLOSED, False),  # SPEC §4: a refund closes the disputed batch again
}


def test_the_table_is_spec_5():
    assert {a: (set(t.sources), t.target, t.owner_only) for a, t in TRANSITIONS.items()} == TABLE


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("status", list(BatchStatus))
def test_every_pair_is_allowed_or_refused_naming_the_status(action, status):
    sources, _, owner_only = TABLE[action]
    why = refusal(action, status, owner_matrix_id=3 if owner_only else None, matrix_id=3)
    if status in sources:
        assert why is None
    else:
        assert why is not None and status.value in why and action.value in why


@pytest.mark.parametrize("action", [Action.UNLOCK, Action.SETTLE])
def test_only_the_owning_matrix_may_unlock_or_settle(action):
    assert refusal(action, S.AWAITING_SETTLEMENT, owner_matrix_id=3, matrix_id=3) is None
    why = refusal(action, S.AWAITING_SETTLEMENT, owner_matrix_id=3, matrix_id=4)
    assert why is not None and "locked by matrix 3" in why
    assert refusal(action, S.AWAITING_SETTLEMENT, owner_matrix_id=3, matrix_id=None) is not None


def test_settled_is_final():
    assert all(refusal(action, S.SETTLED, 3, 3) is not None for action in Action)


def test_a_lock_and_a_settle_remember_the_matrix():
    assert owner_after(Action.LOCK, 3) == 3
    assert owner_after(Action.SETTLE, 3) == 3
    assert owner_after(Action.UNLOCK, 3) is None
    assert owner_after(Action.CLOSE, 3) is None
