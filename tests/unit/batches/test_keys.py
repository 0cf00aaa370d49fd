from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.batches import keys as batching
from app.core.errors import DomainError


def test_window_floors_to_epoch_aligned_interval():
    t = datetime(2026, 3, 2, 14, 7, 31, 500000, tzinfo=UTC)
    assert batching.window_start(t, 900) == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    assert batching.window_start(t, 1) == datetime(2026, 3, 2, 14, 7, 31, tzinfo=UTC)
    assert batching.window_start(t, 86400) == datetime(2026, 3, 2, tzinfo=UTC)
    assert batching.window_start(t, 5) == datetime(2026, 3, 2, 14, 7, 30, tzinfo=UTC)


def test_window_uses_utc_whatever_the_offset():
    local = datetime(2026, 3, 2, 16, 7, tzinfo=timezone(timedelta(hours=2)))
    assert batching.window_start(local, 3600) == datetime(2026, 3, 2, 14, tzinfo=UTC)


def test_names_carry_seconds_only_under_a_minute():
    start = datetime(2026, 3, 2, 14, 5, 7, tzinfo=UTC)
    assert batching.batch_name("DEFAULT", "USD", [], start, 900, 1) == "DEFAULT.USD.2026.03.02.14.05.001"
    assert batching.batch_name("FAST", "EUR", [("transferType", "P2P")], start, 1, 12) == \
        "FAST.EUR.P2P.2026.03.02.14.05.07.012"
    assert batching.batch_name("M", "JPY", [], start, 60, 1000) == "M.JPY.2026.03.02.14.05.1000"


def test_segment_values_follow_the_model_order_and_are_required():
    assert batching.segment_values(["b", "a"], {"a": "1", "b": "2", "c": "3"}) == [("b", "2"), ("a", "1")]
    with pytest.raises(DomainError):
        batching.segment_values(["a"], {})
    with pytest.raises(DomainError):
        batching.segment_values(["a"], {"a": "has.dot"})

