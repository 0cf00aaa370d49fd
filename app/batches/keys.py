"""Deterministic batch assignment (SPEC §4): pure functions, no database.

Batch key = (model, currency, segment values in the model's segmentBy order, window start); the window
start is committedAt floored to the model's interval, epoch aligned, UTC.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from app.core import errors
from app.core.errors import DomainError

SECONDS_PER_DAY = 86_400
SEGMENT_VALUE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SEGMENT_SEPARATOR = "\x1f"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BatchKey(NamedTuple):
    """Built for every transfer of a call and used as a dict key: a named tuple, as a frozen dataclass's __init__
    and __hash__ cost several times as much."""

    model_id: int
    currency: str
    segment_key: str
    window_start: datetime


def window_start(committed_at: datetime, interval_seconds: int) -> datetime:
    """committed_at floored to the interval, counted from the epoch (so windows align to midnight)."""
    # The difference of two aware datetimes does not depend on their time zones: no conversion to UTC needed.
    elapsed = committed_at - _EPOCH
    whole_seconds = elapsed.days * SECONDS_PER_DAY + elapsed.seconds
    return _EPOCH + timedelta(seconds=whole_seconds - whole_seconds % interval_seconds)


def window_end(start: datetime, interval_seconds: int) -> datetime:
    return start + timedelta(seconds=interval_seconds)


def segment_values(segment_by: Sequence[str], attributes: dict[str, str]) -> list[tuple[str, str]]:
    """The (key, value) pairs that split batches further, in the model's order."""
    values: list[tuple[str, str]] = []
    for key in segment_by:
        value = attributes.get(key)
        if value is None:
            raise DomainError(
                errors.VALIDATION, f"attribute {key!r} is required: the settlement model segments by it",
                ["attributes"],
            )
        if not SEGMENT_VALUE.match(value):
            raise DomainError(
                errors.VALIDATION,
                f"attribute {key!r} = {value!r}: segment values are 1-64 letters, digits, '_' or '-'",
                ["attributes"],
            )
        values.append((key, value))
    return values


def segment_key(values: Sequence[tuple[str, str]]) -> str:
    return SEGMENT_SEPARATOR.join(value for _, value in values)


def batch_name(
    model_name: str,
    currency: str,
    values: Sequence[tuple[str, str]],
    start: datetime,
    interval_seconds: int,
    sequence: int,
) -> str:
    """MODEL.CURRENCY[.SEGMENT…].YYYY.MM.DD.HH.mm[.ss].NNN, seconds only for sub-minute intervals."""
    start = start.astimezone(UTC)
    stamp = start.strftime("%Y.%m.%d.%H.%M")
    if interval_seconds < 60:
        stamp += start.strftime(".%S")
    parts = [model_name, currency, *(value for _, value in values), stamp, f"{sequence:03d}"]
    return ".".join(parts)
