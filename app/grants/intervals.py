"""ISO 8601 repeating intervals of payment grants (SPEC §9): pure arithmetic, UTC, half-open periods.

Forms: `R[n]/start/duration`, `R[n]/start/end`, `R[n]/duration/end`. aniso8601 (a maintained ISO 8601
library) parses the grammar; the counting is SPEC's, not the library's: `R` and `R-1` repeat without end,
`Rn` is the first period and n repetitions after it (n + 1 periods), so `R0` is the first period only.

Periods are numbered by an index k >= 0 that identifies them for the life of the grant:
- forward forms (start/duration, start/end): period k = [start + k·D, start + (k+1)·D);
- `duration/end` counts back from end: period k = [end - (k+1)·D, end - k·D), period 0 ends at `end`.
Every boundary is computed from the anchor, never by adding one step after another, so month lengths do
not drift (Jan 31 + 2 months is Mar 31, not Mar 28). `start/end` repeats with the first period's exact
length. Years and months are calendar steps (day clipped to the month's end); days and shorter are exact
(a UTC day is 24 hours). Datetimes must carry an offset; they are used in UTC.
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

import aniso8601
from aniso8601.builders import TupleBuilder

from app.core.errors import (
    INVALID_INTERVAL,
    DomainError,
)

MAX_LENGTH = 200
# Mean Gregorian month, only to estimate an index before stepping to the exact one.
_MEAN_MONTH = timedelta(days=365.2425 / 12)


def _invalid(text: str, why: str) -> DomainError:
    return DomainError(INVALID_INTERVAL, f"interval {text!r}: {why}", ["interval"])


@dataclass(frozen=True)
class Step:
    """One period's length: calendar months plus an exact remainder."""

    months: int
    exact: timedelta

    def approximate(self) -> timedelta:
        return self.months * _MEAN_MONTH + self.exact


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` moved by whole calendar months, the day clipped to the target month's length."""
    years, month_index = divmod(moment.month - 1 + months, 12)
    year = moment.year + years
    if not 1 <= year <= 9999:
        raise OverflowError("date out of range")
    month = month_index + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


@dataclass(frozen=True)
class IntervalPeriod:
    index: int
    start: datetime
    end: datetime

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class RepeatingInterval:
    text: str
    repetitions: int | None  # None: no end; n: the first period and n repetitions after it
    anchor: datetime  # start (forward forms) or end (duration/end)
    step: Step
    backward: bool

    @property
    def period_count(self) -> int | None:
        return None if self.repetitions is None else self.repetitions + 1

    def boundary(self, k: int) -> datetime:
        """anchor ± k steps (OverflowError beyond year 9999)."""
        sign = -1 if self.backward else 1
        moment = add_months(self.anchor, sign * k * self.step.months) if self.step.months else self.anchor
        return moment + sign * k * self.step.exact

    def period(self, index: int) -> IntervalPeriod:
        if self.backward:
            return IntervalPeriod(index, self.boundary(index + 1), self.boundary(index))
        return IntervalPeriod(index, self.boundary(index), self.boundary(index + 1))

    def period_at(self, moment: datetime) -> IntervalPeriod | None:
        """The period containing `moment` (half-open), or None before the first / after the last."""
        moment = moment.astimezone(UTC)
        try:
            index = self._backward_index(moment) if self.backward else self._forward_index(moment)
            if index is None or (self.repetitions is not None and index > self.repetitions):
                return None
            return self.period(index)
        except OverflowError:
            return None

    def _forward_index(self, moment: datetime) -> int | None:
        if moment < self.anchor:
            return None
        if not self.step.months:
            return (moment - self.anchor) // self.step.exact
        k = int((moment - self.anchor) / self.step.approximate())
        while k > 0 and self.boundary(k) > moment:
            k -= 1
        while self.boundary(k + 1) <= moment:
            k += 1
        return k

    def _backward_index(self, moment: datetime) -> int | None:
        if moment >= self.anchor:
            return None
        if not self.step.months:
            return (self.anchor - moment - timedelta(microseconds=1)) // self.step.exact
        k = int((self.anchor - moment) / self.step.approximate())
        while k > 0 and self.boundary(k) <= moment:
            k -= 1
        while self.boundary(k + 1) > moment:
            k += 1
        return k


_REPEAT = re.compile(r"^R(-1|\d+)?$")


def parse(text: str) -> RepeatingInterval:
    """Parse and check a repeating interval; DomainError(INVALID_INTERVAL) with the reason otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise _invalid(str(text), "must not be empty")
    if len(text) > MAX_LENGTH or text != text.strip():
        raise _invalid(text, f"must be at most {MAX_LENGTH} characters without surrounding spaces")
    parts = text.split("/")
    if len(parts) != 3:
        raise _invalid(text, "expected R[n]/start/duration, R[n]/start/end or R[n]/duration/end")
    repeat = _REPEAT.match(parts[0])
    if repeat is None:
        raise _invalid(text, "must begin with R, R-1 or Rn (n a non-negative integer)")
    try:
        parsed = aniso8601.parse_repeating_interval(text, builder=TupleBuilder)
    except (ValueError, ArithmeticError, TypeError) as exc:  # aniso8601's errors are ValueErrors
        raise _invalid(text, str(exc)) from None
    count = repeat.group(1)
    repetitions = None if count in (None, "-1") else int(count)
    interval = parsed.interval
    try:
        if interval.start is not None and interval.end is not None:
            start, end = _moment(text, parts[1]), _moment(text, parts[2])
            if end <= start:
                raise _invalid(text, "end must lie after start")
            result = RepeatingInterval(text, repetitions, start, Step(0, end - start), backward=False)
        elif interval.start is not None:
            result = RepeatingInterval(text, repetitions, _moment(text, parts[1]),
                                       _step(text, interval.duration), backward=False)
        else:
            result = RepeatingInterval(text, repetitions, _moment(text, parts[2]),
                                       _step(text, interval.duration), backward=True)
        result.period(0)  # the first period must be representable
    except OverflowError:
        raise _invalid(text, "lies beyond the supported date range") from None
    return result


def _moment(text: str, part: str) -> datetime:
    if "T" not in part:
        raise _invalid(text, f"{part!r} must be a date-time with an offset, e.g. 2026-03-01T00:00:00Z")
    try:
        moment = aniso8601.parse_datetime(part)
    except (ValueError, ArithmeticError, TypeError) as exc:
        raise _invalid(text, str(exc)) from None
    if moment.tzinfo is None:
        raise _invalid(text, f"{part!r} has no UTC offset: write e.g. 2026-03-01T00:00:00Z")
    return moment.astimezone(UTC)


def _number(text: str, value: str | None) -> Decimal:
    if value is None:
        return Decimal(0)
    try:
        return Decimal(value.replace(",", "."))
    except InvalidOperation:
        raise _invalid(text, f"{value!r} is not a number") from None


def _step(text: str, duration: object) -> Step:
    years = _number(text, getattr(duration, "PnY", None))
    months = _number(text, getattr(duration, "PnM", None))
    if years != years.to_integral_value() or months != months.to_integral_value():
        raise _invalid(text, "years and months must be whole numbers (they have no exact length)")
    days = _number(text, getattr(duration, "PnD", None)) + 7 * _number(text, getattr(duration, "PnW", None))
    seconds = (days * 86400 + _number(text, getattr(duration, "TnH", None)) * 3600
               + _number(text, getattr(duration, "TnM", None)) * 60 + _number(text, getattr(duration, "TnS", None)))
    micros = seconds * 1_000_000
    if micros != micros.to_integral_value():
        raise _invalid(text, "the duration is finer than a microsecond")
    try:
        exact = timedelta(microseconds=int(micros))
    except OverflowError:
        raise _invalid(text, "the duration is too long") from None
    step = Step(int(years) * 12 + int(months), exact)
    if step.months == 0 and step.exact <= timedelta(0):
        raise _invalid(text, "the duration must be longer than zero")
    return step
