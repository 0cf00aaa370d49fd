"""The one clock: every timestamp settlegraph makes comes from `now()`, in UTC."""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_source: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def now() -> datetime:
    return _source()


def set_source(source: Callable[[], datetime] | None) -> None:
    """Replace the clock (tests, replays). None restores the system clock."""
    global _source
    _source = source or (lambda: datetime.now(UTC))


def as_utc(value: datetime) -> datetime:
    """An aware datetime in UTC; naive datetimes are refused upstream, never guessed."""
    if value.tzinfo is None:
        raise ValueError("datetime without an offset")
    return value.astimezone(UTC)
