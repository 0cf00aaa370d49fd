"""A transfer id sent again is a DUPLICATE when its content equals the stored row's, else a conflict: the content
as recording builds it and as either dialect reads it back."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from app.batches.store import NewTransfer, stored_transfer

AT = datetime(2026, 3, 2, 14, 5, 7, 250_000, tzinfo=UTC)


def transfer(**changes: object) -> NewTransfer:
    fields = dict(transfer_id="t-1", payer_id="a", payee_id="b", amount=100, currency="USD", committed_at=AT,
                  model_id=1, attributes=[("x", "1"), ("y", "2")], refund_of=None, batch_id=0)
    fields.update(changes)
    return NewTransfer(**fields)  # type: ignore[arg-type]


def test_content_ignores_attribute_order_but_not_a_field():
    one = transfer().content()
    assert one == transfer(attributes=[("y", "2"), ("x", "1")]).content()
    assert one == transfer(committed_at=AT.astimezone(timezone(timedelta(hours=2)))).content()  # the same instant
    for change in ({"amount": 101}, {"payer_id": "c"}, {"payee_id": "c"}, {"currency": "EUR"}, {"model_id": 2},
                   {"committed_at": AT + timedelta(microseconds=1)}, {"attributes": [("x", "1")]},
                   {"refund_of": "t-0"}):
        assert one != transfer(**change).content(), change


def stored_row(committed_at: object, attributes: object) -> dict[str, object]:
    return {"payer_id": "a", "payee_id": "b", "amount": 100, "currency": "USD", "committed_at": committed_at,
            "model_id": 1, "attributes": attributes, "refund_of": None, "batch_id": 7}


def test_a_stored_row_reads_back_to_the_same_content_from_either_dialect():
    pairs = [{"key": "y", "value": "2"}, {"key": "x", "value": "1"}]
    postgres = stored_transfer(stored_row(AT, json.dumps(pairs)))  # asyncpg: a datetime, jsonb as text
    sqlite = stored_transfer(stored_row(AT.isoformat(sep=" "), json.dumps(pairs)))  # SQLite: ISO text
    as_json = stored_transfer(json.loads(json.dumps(stored_row(AT.isoformat(), pairs))))  # json_build_object
    for stored in (postgres, sqlite, as_json):
        assert stored.content == transfer().content()
        assert stored.batch_id == 7
    assert stored_transfer(stored_row(AT, "[]")).content != transfer().content()
