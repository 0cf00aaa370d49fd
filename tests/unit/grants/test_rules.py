"""The pure rules of payment grants (SPEC §9): the limit, the kept receive side, delivered and sent amounts."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.core.errors import DomainError
from app.grants import rules
from app.grants.intervals import IntervalPeriod
from app.grants.rules import ABORTED, COMMITTED, DEBIT, RECEIVE, RESERVED, GrantTerms, Sums

DAY = IntervalPeriod(3, datetime(2026, 3, 4, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC))


def grant(kind: str | None = DEBIT, limit: int | None = 10_000, interval: str | None = None) -> GrantTerms:
    return GrantTerms(7, "dfsp-a", None, kind, limit, "USD" if kind else None, interval)


def refusal(call, *args, **kwargs) -> DomainError:
    with pytest.raises(DomainError) as caught:
        call(*args, **kwargs)
    return caught.value


# -- the limit ------------------------------------------------------------------------------------------------

def test_an_amount_that_fits_exactly_at_the_limit_is_allowed():
    rules.check_limit(grant(), Sums(total_debit=7_500, has_total=True), None, debit=2_500, receive=0)


def test_one_minor_unit_above_the_limit_is_refused_with_what_is_spent():
    error = refusal(rules.check_limit, grant(), Sums(total_debit=7_500, has_total=True), None, debit=2_501,
                    receive=0)
    assert error.code == "GRANT_LIMIT_EXCEEDED" and error.field == ["amount"]
    assert "25.01" in error.message and "100.00" in error.message and "75.00 spent overall" in error.message


def test_with_an_interval_only_the_period_counts_not_the_total():
    sums = Sums(total_debit=50_000, total_receive=50_000, interval_debit=9_000, interval_receive=9_000,
                has_total=True, has_interval=True)
    daily = grant(interval="R/2026-03-01T00:00:00Z/P1D")
    rules.check_limit(daily, sums, DAY, debit=1_000, receive=1_000)
    error = refusal(rules.check_limit, daily, sums, DAY, debit=1_001, receive=0)
    assert "in the period from 2026-03-04T00:00:00+00:00" in error.message


def test_without_an_interval_the_total_counts_not_a_period():
    sums = Sums(total_debit=9_000, interval_debit=0, has_total=True)
    refusal(rules.check_limit, grant(), sums, None, debit=1_001, receive=0)


def test_a_debit_limit_counts_the_debit_side_and_a_receive_limit_the_receive_side():
    sums = Sums(total_debit=9_999, total_receive=0, has_total=True)
    rules.check_limit(grant(RECEIVE), sums, None, debit=5_000, receive=10_000)
    error = refusal(rules.check_limit, grant(RECEIVE), sums, None, debit=0, receive=10_001)
    assert error.field == ["receiveAmount"] and "receive limit" in error.message
    refusal(rules.check_limit, grant(DEBIT), sums, None, debit=2, receive=0)


def test_a_grant_without_limit_allows_anything():
    rules.check_limit(grant(None, None), Sums(), None, debit=10**15, receive=10**15)


def test_payer_payee_and_currency_must_match():
    restricted = GrantTerms(7, "dfsp-a", "dfsp-b", DEBIT, 100, "USD", None)
    rules.check_match(restricted, "dfsp-a", "dfsp-b", "USD")
    assert refusal(rules.check_match, restricted, "dfsp-c", "dfsp-b", "USD").code == "GRANT_PAYER_MISMATCH"
    assert refusal(rules.check_match, restricted, "dfsp-a", "dfsp-c", "USD").code == "GRANT_PAYEE_MISMATCH"
    assert refusal(rules.check_match, restricted, "dfsp-a", "dfsp-b", "EUR").code == "GRANT_CURRENCY_MISMATCH"


def test_a_grant_with_an_interval_spends_only_inside_a_period():
    daily = grant(interval="R0/2026-03-01T00:00:00Z/P1D")
    moment = datetime(2026, 3, 4, tzinfo=UTC)
    assert daily.period_at(moment) is None
    assert refusal(rules.check_active, daily, None, moment).code == "GRANT_NOT_ACTIVE"
    rules.check_active(grant(), None, moment)  # no interval: always


# -- spent amounts ----------------------------------------------------------------------------------------------

def test_a_change_continues_the_sums_of_its_own_period_and_of_the_grant():
    sums = Sums(total_debit=900, total_receive=800, interval_debit=90, interval_receive=80, has_total=True,
                has_interval=True)
    change = rules.spent_change(7, "t1", "USD", DAY, sums, state=COMMITTED, debit=100, receive=60,
                                debit_before=100, receive_before=100)
    assert (change.debit_change, change.receive_change) == (0, -40)
    assert (change.interval_debit, change.interval_receive, change.total_debit, change.total_receive) == \
        (90, 40, 900, 760)
    overall = rules.spent_change(7, "t2", "USD", None, sums, state=RESERVED, debit=5, receive=5)
    assert (overall.interval_debit, overall.interval_receive, overall.total_debit) == (None, None, 905)


def test_missing_rows_of_a_reservation_are_noticed():
    assert Sums().missing(in_interval=False)
    assert not Sums(has_total=True).missing(in_interval=False)
    assert Sums(has_total=True).missing(in_interval=True)


def test_what_a_grant_reports_zero_with_the_currency_and_null_for_the_kind_it_does_not_limit():
    spent = rules.spent_view(grant(RECEIVE), None, Sums())
    assert (spent.debit, spent.receive, spent.currency, spent.total_debit) == (None, 0, "USD", None)
    outside = rules.spent_view(grant(interval="R0/2026-03-01T00:00:00Z/P1D"), None,
                               Sums(total_debit=5, interval_debit=5, has_total=True))
    assert (outside.debit, outside.total_debit) == (0, 5)
    assert rules.spent_view(grant(None, None), None, Sums()).currency is None


# -- commit and abort ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("amount", "receive", "sent", "kept"), [
    (1_000, 1_000, 400, 400),
    (1_000, 900, 500, 450),  # in proportion
    (300, 100, 100, 33),  # 33.33… rounded down
    (300, 100, 299, 99),  # 99.66… rounded down, never up
    (1_000, 900, 0, 0),
    (1_000, 900, 1_000, 900),
])
def test_kept_receive_is_in_proportion_to_what_was_sent_rounded_down(amount, receive, sent, kept):
    assert rules.kept_receive(amount, receive, sent) == kept


def test_a_delivered_amount_is_positive_and_at_most_the_reserved_receive_amount():
    assert rules.delivered_amount("9.00", "USD", 900) == 900
    assert rules.delivered_amount("0.01", "USD", 900) == 1
    error = refusal(rules.delivered_amount, "9.01", "USD", 900)
    assert error.code == "AMOUNT_EXCEEDS_RESERVED" and error.field == ["deliveredAmount"]
    assert "9.00" in error.message
    assert refusal(rules.delivered_amount, "0.00", "USD", 900).code == "AMOUNT_NOT_POSITIVE"
    assert refusal(rules.delivered_amount, "1.001", "USD", 900).field == ["deliveredAmount", "value"]


def test_a_sent_amount_may_be_zero_and_at_most_the_reserved_amount():
    assert rules.sent_amount("0", "USD", 500) == 0
    assert rules.sent_amount("5.00", "USD", 500) == 500
    error = refusal(rules.sent_amount, "5.01", "USD", 500)
    assert error.code == "AMOUNT_EXCEEDS_RESERVED" and error.field == ["sentAmount"]
    assert refusal(rules.sent_amount, "-1.00", "USD", 500).code == "AMOUNT_NOT_POSITIVE"


def test_a_commit_after_an_abort_and_an_abort_after_a_commit_are_refused():
    prepared = datetime(2026, 3, 1, tzinfo=UTC)
    error = refusal(rules.check_commit, "t1", ABORTED, prepared, 100, "USD", None, None, prepared)
    assert error.code == "INVALID_TRANSITION" and "aborted" in error.message
    assert refusal(rules.check_abort, "t1", COMMITTED).code == "INVALID_TRANSITION"
    assert rules.check_abort("t1", RESERVED) and not rules.check_abort("t1", ABORTED)


def test_a_commit_delivers_all_by_default_never_before_its_preparation():
    prepared = datetime(2026, 3, 1, 12, tzinfo=UTC)
    now = datetime(2026, 3, 2, tzinfo=UTC)
    assert rules.check_commit("t1", RESERVED, prepared, 700, "USD", None, None, now) == (700, now)
    assert rules.check_commit("t1", RESERVED, prepared, 700, "USD", "3.00", prepared, now) == (300, prepared)
    assert refusal(rules.check_commit, "t1", RESERVED, prepared, 700, "USD", None,
                   datetime(2026, 3, 1, 11, tzinfo=UTC), now).field == ["committedAt"]
    assert refusal(rules.check_commit, "t1", RESERVED, prepared, 700, "USD", None, datetime(2026, 3, 2),
                   now).message == "committedAt needs a UTC offset"


def test_what_a_transfer_counts_now():
    assert rules.contribution(RESERVED, 1_000, 900, None, None) == (1_000, 900)
    assert rules.contribution(COMMITTED, 1_000, 900, 600, None) == (1_000, 600)
    assert rules.contribution(COMMITTED, 1_000, 900, None, None) == (1_000, 900)
    assert rules.contribution(ABORTED, 1_000, 900, None, 500) == (500, 450)
    assert rules.contribution(ABORTED, 1_000, 900, None, None) == (0, 0)


# -- grants ---------------------------------------------------------------------------------------------------------

def test_a_grant_limits_one_kind_at_most():
    spec = rules.validate_grant(rules.GrantRequest("dfsp-a", debit_amount=("100.00", "USD"),
                                                   interval="R/2026-03-01T00:00:00Z/P1D"))
    assert (spec.limit_kind, spec.limit_amount, spec.currency) == (DEBIT, 10_000, "USD")
    both = rules.GrantRequest("dfsp-a", debit_amount=("1", "USD"), receive_amount=("1", "USD"))
    assert refusal(rules.validate_grant, both).code == "ONLY_ONE_GRANT_AMOUNT"
    assert rules.validate_grant(rules.GrantRequest("dfsp-a")).limit_kind is None
    assert refusal(rules.validate_grant, rules.GrantRequest("dfsp-a", "dfsp-a")).code == "SAME_PARTICIPANT"
    zero = rules.GrantRequest("dfsp-a", receive_amount=("0.00", "USD"))
    assert refusal(rules.validate_grant, zero).field == ["receiveAmount"]
