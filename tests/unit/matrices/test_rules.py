"""Pure rules of matrices and the ledger: criteria, settleable statuses, balanced journal lines, hour buckets."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.core.errors import DomainError
from app.matrices import rules, totals
from app.matrices.ledger import Account, settlement_lines
from app.matrices.rules import CriteriaInput, validate_criteria
from models.settlement import SettlementModel


def model(segment_by: list[str] | None = None, currencies: list[str] | None = None) -> SettlementModel:
    return SettlementModel(id=7, name="RTGS", batch_interval_seconds=60, currencies=currencies or [],
                           segment_by=segment_by or [])


def spec(**extra: object) -> CriteriaInput:
    values: dict[str, object] = {"model": "RTGS", "unit": "HOUR", "start": datetime(2026, 3, 2, 14, tzinfo=UTC),
                                 "end": datetime(2026, 3, 2, 16, tzinfo=UTC)}
    values.update(extra)
    return CriteriaInput(**values)  # type: ignore[arg-type]


def test_criteria_keep_order_and_drop_repeats():
    criteria = validate_criteria(model(["transferType", "region"]),
                                 spec(currencies=["USD", "EUR", "USD"],
                                      segment=[("region", "EU"), ("transferType", "P2P")],
                                      batch_statuses=["OPEN", "OPEN", "CLOSED"]))
    assert criteria.currencies == ["USD", "EUR"]
    assert criteria.segment == [("transferType", "P2P"), ("region", "EU")]
    assert criteria.segment_key == "P2P\x1fEU"
    assert criteria.batch_statuses == ["OPEN", "CLOSED"]


@pytest.mark.parametrize(("m", "extra", "code"), [
    (model(["transferType"]), {"segment": [("transferType", "P2P"), ("transferType", "B2B")]}, "VALIDATION"),
    (model(["transferType", "region"]), {"segment": [("transferType", "P2P")]}, "VALIDATION"),
    (model(currencies=["USD"]), {"currencies": ["EUR"]}, "CURRENCY_NOT_ACCEPTED"),
    (model(), {"currencies": ["usd"]}, "UNKNOWN_CURRENCY"),
    (model(), {"unit": "SECOND"}, "PERIOD_TOO_FINE"),
])
def test_bad_criteria(m, extra, code):
    with pytest.raises(DomainError) as caught:
        validate_criteria(m, spec(**extra))
    assert caught.value.code == code


@pytest.mark.parametrize(("matrix_status", "batch_status", "owned", "settleable"), [
    ("OPEN", "OPEN", False, True),
    ("OPEN", "CLOSED", False, True),
    ("OPEN", "IN_DISPUTE", False, False),
    ("OPEN", "AWAITING_SETTLEMENT", False, False),
    ("OPEN", "SETTLED", False, False),
    ("AWAITING_SETTLEMENT", "AWAITING_SETTLEMENT", True, True),
    ("AWAITING_SETTLEMENT", "AWAITING_SETTLEMENT", False, False),
    ("AWAITING_SETTLEMENT", "CLOSED", False, False),
    ("SETTLED", "SETTLED", True, False),
])
def test_settleable(matrix_status, batch_status, owned, settleable):
    assert rules.is_settleable(matrix_status, batch_status, owned) is settleable


@pytest.mark.parametrize("net", [1, -1, 12_345, -(10**15), 0])
def test_settlement_lines_balance_and_move_the_net(net):
    lines = settlement_lines(net)
    assert sum(line.debit for line in lines) == sum(line.credit for line in lines)
    settlement = sum(line.credit - line.debit for line in lines if line.account is Account.SETTLEMENT)
    position = sum(line.credit - line.debit for line in lines if line.account is Account.POSITION)
    assert settlement == net and position == -net
    assert (lines == []) is (net == 0)


def test_sets_and_hours():
    assert rules.join_set(["USD", "EUR"]) == ",USD,EUR," and rules.split_set(",USD,EUR,") == ["USD", "EUR"]
    assert rules.join_set([]) == "" and rules.split_set("") == []
    at = datetime(2026, 3, 2, 14, 0, 30, tzinfo=UTC)
    assert totals.full_hours(at, datetime(2026, 3, 2, 17, 0, 1, tzinfo=UTC)) == (
        int(datetime(2026, 3, 2, 15, tzinfo=UTC).timestamp()), int(datetime(2026, 3, 2, 17, tzinfo=UTC).timestamp()))
    assert totals.full_hours(at, datetime(2026, 3, 2, 15, 30, tzinfo=UTC)) is None
