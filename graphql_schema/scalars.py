"""Scalars of the contract: Amount (exact decimal string, SPEC §1) and DateTime (ISO 8601 with offset)."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NewType

import strawberry

from app.core import money

Amount = NewType("Amount", str)


def amount(minor: int, currency: str) -> Amount:
    """Minor units on the wire: exactly the currency's decimals (SPEC §1)."""
    return Amount(money.format_minor(minor, currency))


def _parse_amount(value: Any) -> str:
    # Kept as text: its scale is checked against the currency it travels with (app/core/money.py), so a
    # malformed amount in a batch of transfers rejects that transfer, not the whole call.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("Amount must be a decimal string such as \"1250.50\" (never a float)")
    return str(value)


def _serialize_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _parse_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO 8601 string with an offset")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value[:100]!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset: write e.g. 2026-03-02T14:05:00+00:00 or ...Z")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first representable UTC moment
        raise ValueError(f"{value!r} lies outside the supported date range once in UTC") from None


SCALAR_MAP: dict[object, Any] = {
    Amount: strawberry.scalar(
        name="Amount",
        description='Exact decimal amount as a string, e.g. "1250.50" (SPEC §1).',
        serialize=str,
        parse_value=_parse_amount,
    ),
    datetime: strawberry.scalar(
        name="DateTime",
        description='ISO 8601 date-time with offset, e.g. "2026-03-02T14:05:00+00:00"; answered in UTC.',
        serialize=_serialize_datetime,
        parse_value=_parse_datetime,
    ),
}
