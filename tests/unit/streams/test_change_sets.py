"""Status changes become outbox change sets (app/batches/lifecycle.publish_changes): one per shared
from / to / at / actor / reason / matrix, in order, listing batch ids; nothing written until the flush."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from app.batches import lifecycle
from app.batches.status import StatusChange
from app.db import outbox

AT = datetime(2026, 3, 2, tzinfo=UTC)


class Conn:
    """Stands in for a transaction's connection: change sets are staged on it."""


def change(batch_id: int, source: str | None, target: str, reason: str = "r") -> StatusChange:
    return StatusChange(batch_id, source, target, AT, "sam", reason, 7)


def publish_changes(conn: Conn, changes: list[StatusChange]) -> None:
    """Changes that share their target, time, actor, reason and matrix, as apply() makes them."""
    first = changes[0]
    lifecycle.publish_changes(conn, [c.batch_id for c in changes], [c.from_status for c in changes], first.to_status,
                              first.at, first.actor, first.reason, first.matrix_id)


def test_a_day_of_changes_is_one_change_set_per_source_status() -> None:
    conn = Conn()
    publish_changes(conn, [change(i, "OPEN" if i % 2 else "CLOSED", "AWAITING_SETTLEMENT") for i in range(1, 86_401)])
    sets = outbox.staged(conn)
    assert [(s.body["from"], len(s.ids)) for s in sets] == [("OPEN", 43_200), ("CLOSED", 43_200)]
    payload = json.loads(sets[0].payload())
    assert payload == {"from": "OPEN", "to": "AWAITING_SETTLEMENT", "at": AT.isoformat(), "actor": "sam",
                       "reason": "r", "matrixId": 7, "ids": list(range(1, 86_401, 2))}


def test_consecutive_calls_with_the_same_change_extend_the_last_set() -> None:
    conn = Conn()
    publish_changes(conn, [change(1, None, "OPEN", "created")])
    publish_changes(conn, [change(2, None, "OPEN", "created")])
    publish_changes(conn, [change(1, "OPEN", "CLOSED")])
    outbox.stage(conn, "matrix", {"event": "requested"})
    publish_changes(conn, [change(3, "OPEN", "CLOSED")])
    assert [(s.kind, s.ids) for s in outbox.staged(conn)] == [("batch", [1, 2]), ("batch", [1]), ("matrix", []),
                                                             ("batch", [3])]
