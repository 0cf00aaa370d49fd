"""The repeating-interval arithmetic of grants (SPEC §9): forms, counting, half-open boundaries, UTC."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.core.errors import DomainError
from app.grants import intervals


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def span(interval: intervals.RepeatingInterval, moment: str) -> tuple[int, str, str] | None:
    period = interval.period_at(at(moment))
    if period is None:
        return None
    return period.index, period.start.isoformat(), period.end.isoformat()


def test_start_duration_unbounded_daily() -> None:
    daily = intervals.parse("R/2026-03-01T00:00:00Z/P1D")
    assert daily.repetitions is None and daily.period_count is None
    assert span(daily, "2026-03-01T00:00:00+00:00") == (0, "2026-03-01T00:00:00+00:00", "2026-03-02T00:00:00+00:00")
    assert span(daily, "2026-03-01T23:59:59.999999+00:00")[0] == 0
    # half-open: the boundary belongs to the next period
    assert span(daily, "2026-03-02T00:00:00+00:00")[0] == 1
    assert span(daily, "2030-01-01T12:00:00+00:00")[0] == (datetime(2030, 1, 1, tzinfo=UTC)
                                                           - datetime(2026, 3, 1, tzinfo=UTC)).days
    assert span(daily, "2026-02-28T23:59:59+00:00") is None  # before the first period


def test_r_minus_one_is_unbounded() -> None:
    assert intervals.parse("R-1/2026-03-01T00:00:00Z/P1D").repetitions is None
    assert span(intervals.parse("R-1/2026-03-01T00:00:00Z/P1D"), "2099-01-01T00:00:00+00:00") is not None


def test_r0_is_the_first_period_only() -> None:
    once = intervals.parse("R0/2026-03-01T00:00:00Z/P1D")
    assert once.period_count == 1
    assert span(once, "2026-03-01T10:00:00+00:00")[0] == 0
    assert span(once, "2026-03-02T00:00:00+00:00") is None


def test_rn_is_first_period_and_n_repetitions() -> None:
    # aniso8601 and others count R3 as three occurrences; SPEC: the first period and 3 repetitions after it.
    four = intervals.parse("R3/2026-03-01T00:00:00Z/PT1H")
    assert four.period_count == 4
    assert span(four, "2026-03-01T03:59:59+00:00")[0] == 3
    assert span(four, "2026-03-01T04:00:00+00:00") is None


def test_start_end_repeats_with_first_period_length() -> None:
    weekly = intervals.parse("R2/2026-03-02T00:00:00+02:00/2026-03-09T00:00:00+02:00")
    assert weekly.anchor == at("2026-03-01T22:00:00+00:00")
    assert weekly.step.exact == timedelta(days=7)
    assert span(weekly, "2026-03-15T21:59:59+00:00") == (1, "2026-03-08T22:00:00+00:00",
                                                         "2026-03-15T22:00:00+00:00")
    assert span(weekly, "2026-03-22T21:00:00+00:00")[0] == 2
    assert span(weekly, "2026-03-22T22:00:00+00:00") is None


def test_duration_end_counts_back_from_end() -> None:
    back = intervals.parse("R2/P1D/2026-03-10T00:00:00Z")
    assert back.backward
    assert span(back, "2026-03-09T00:00:00+00:00") == (0, "2026-03-09T00:00:00+00:00", "2026-03-10T00:00:00+00:00")
    assert span(back, "2026-03-08T23:59:59+00:00")[0] == 1
    assert span(back, "2026-03-07T00:00:00+00:00")[0] == 2
    assert span(back, "2026-03-06T23:59:59+00:00") is None  # before the third (last) period
    assert span(back, "2026-03-10T00:00:00+00:00") is None  # end is excluded


def test_unbounded_duration_end_goes_back_forever() -> None:
    back = intervals.parse("R/PT1H/2026-03-10T00:00:00Z")
    assert span(back, "2025-03-10T00:30:00+00:00")[1] == "2025-03-10T00:00:00+00:00"


def test_monthly_steps_follow_the_calendar_without_drift() -> None:
    monthly = intervals.parse("R/2026-01-31T00:00:00Z/P1M")
    assert span(monthly, "2026-02-28T12:00:00+00:00") == (1, "2026-02-28T00:00:00+00:00", "2026-03-31T00:00:00+00:00")
    assert span(monthly, "2026-03-31T00:00:00+00:00") == (2, "2026-03-31T00:00:00+00:00", "2026-04-30T00:00:00+00:00")
    assert span(monthly, "2036-12-31T00:00:00+00:00")[0] == 131
    yearly = intervals.parse("R/P1Y/2026-01-01T00:00:00Z")
    assert span(yearly, "2024-06-01T00:00:00+00:00") == (1, "2024-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00")


def test_mixed_calendar_and_exact_duration() -> None:
    mixed = intervals.parse("R/2026-01-01T00:00:00Z/P1M1DT12H")
    assert span(mixed, "2026-02-02T12:00:00+00:00")[1] == "2026-02-02T12:00:00+00:00"
    assert span(mixed, "2026-02-02T11:59:59+00:00")[0] == 0


def test_every_moment_lies_in_exactly_one_period() -> None:
    monthly = intervals.parse("R/2026-01-31T10:00:00Z/P1M")
    moment = at("2026-01-31T10:00:00+00:00")
    previous = None
    for _ in range(400):
        period = monthly.period_at(moment)
        assert period is not None and period.contains(moment)
        if previous is not None and period.index != previous.index:
            assert period.index == previous.index + 1 and period.start == previous.end
        previous = period
        moment += timedelta(days=3, hours=5)


@pytest.mark.parametrize("text", [
    "",
    "P1D",
    "2026-03-01T00:00:00Z/P1D",  # not repeating
    "R-2/2026-03-01T00:00:00Z/P1D",
    "Rx/2026-03-01T00:00:00Z/P1D",
    "R/2026-03-01/P1D",  # date without time and offset
    "R/2026-03-01T00:00:00/P1D",  # no offset
    "R/2026-03-01T00:00:00Z/PT0S",  # zero length
    "R/2026-03-02T00:00:00Z/2026-03-01T00:00:00Z",  # end before start
    "R/2026-03-01T00:00:00Z/P0.5M",  # fractional months
    "R/P1D/P1D",
    "R/2026-13-01T00:00:00Z/P1D",
    "R/9999-12-31T00:00:00Z/P1Y",
    " R/2026-03-01T00:00:00Z/P1D",
])
def test_malformed_intervals_are_refused(text: str) -> None:
    with pytest.raises(DomainError) as raised:
        intervals.parse(text)
    assert raised.value.code == intervals.INVALID_INTERVAL
    assert raised.value.field == ["interval"]


def test_fractional_days_and_weeks_are_exact() -> None:
    assert intervals.parse("R/2026-03-01T00:00:00Z/P0.5D").step.exact == timedelta(hours=12)
    assert intervals.parse("R/2026-03-01T00:00:00Z/P2W").step.exact == timedelta(days=14)


def test_far_future_outside_range_is_no_period() -> None:
    # the period holding 9999-12-31 would end in year 10026: not representable, so no period
    assert intervals.parse("R/2026-03-01T00:00:00Z/P1000Y").period_at(at("9999-12-31T00:00:00+00:00")) is None
    assert intervals.parse("R/2026-03-01T00:00:00Z/P1000Y").period_at(at("8000-01-01T00:00:00+00:00")).index == 5
    assert intervals.parse("R/P1000Y/2026-03-01T00:00:00Z").period_at(at("0001-06-01T00:00:00+00:00")) is None
