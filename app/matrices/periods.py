"""Settlement periods (SPEC §6): a unit, a start and an end on that unit's boundaries, UTC."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from app.core import errors
from app.core.errors import PERIOD_MISALIGNED, PERIOD_TOO_FINE, DomainError


class TimeUnit(enum.StrEnum):
    SECOND = "SECOND"
    MINUTE = "MINUTE"
    HOUR = "HOUR"
    DAY = "DAY"


UNIT_SECONDS = {TimeUnit.SECOND: 1, TimeUnit.MINUTE: 60, TimeUnit.HOUR: 3600, TimeUnit.DAY: 86_400}


@dataclass(frozen=True)
class Period:
    unit: TimeUnit
    start: datetime
    end: datetime


def validate_period(unit: TimeUnit | str, start: datetime, end: datetime, model_interval_seconds: int) -> Period:
    unit = TimeUnit(unit)
    unit_seconds = UNIT_SECONDS[unit]
    if unit_seconds < model_interval_seconds:
        raise DomainError(
            PERIOD_TOO_FINE,
            f"a period in {unit.value}S is finer than the model's {model_interval_seconds}-second batches",
            ["period", "unit"],
        )
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    for name, value in (("start", start), ("end", end)):
        if value.microsecond or int(value.timestamp()) % unit_seconds:
            raise DomainError(PERIOD_MISALIGNED, f"period {name} {value.isoformat()} is not on a "
                              f"{unit.value} boundary (UTC)", ["period", name])
    if end <= start:
        raise DomainError(errors.VALIDATION, "period end must be after its start", ["period", "end"])
    return Period(unit, start, end)
