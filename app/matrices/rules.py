"""Settlement matrices (SPEC §6), the pure rules: types and statuses, criteria, membership by criteria, and what a
matrix may settle. No database."""
from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from app.batches.keys import SEGMENT_SEPARATOR
from app.batches.status import BatchStatus
from app.core import errors, money
from app.core.checks import parse_id
from app.core.errors import DomainError
from app.matrices import periods
from models.matrices import SettlementMatrix
from models.settlement import Batch, SettlementModel

MAX_BATCH_IDS = 10_000


class MatrixType(enum.StrEnum):
    DYNAMIC = "DYNAMIC"
    STATIC = "STATIC"


class MatrixStatus(enum.StrEnum):
    OPEN = "OPEN"
    AWAITING_SETTLEMENT = "AWAITING_SETTLEMENT"
    SETTLED = "SETTLED"


@dataclass(frozen=True)
class CriteriaInput:
    model: str
    unit: str
    start: datetime
    end: datetime
    currencies: Sequence[str] | None = None
    segment: Sequence[tuple[str, str]] | None = None
    batch_statuses: Sequence[str] | None = None


@dataclass(frozen=True)
class Criteria:
    model_id: int
    period: periods.Period
    currencies: list[str]
    segment: list[tuple[str, str]]
    segment_key: str | None
    batch_statuses: list[str]


def split_set(text: str) -> list[str]:
    """The members of a delimited set column (",USD,EUR," -> ["USD", "EUR"]; "" -> [])."""
    return [part for part in text.split(",") if part]


def join_set(values: Iterable[str]) -> str:
    items = list(values)
    return f",{','.join(items)}," if items else ""


def validate_criteria(model: SettlementModel, spec: CriteriaInput) -> Criteria:
    try:
        period = periods.validate_period(spec.unit, spec.start, spec.end, model.batch_interval_seconds)
    except DomainError as exc:
        raise exc.at("input") from None
    currencies: list[str] = []
    for index, code in enumerate(spec.currencies or []):
        try:
            money.currency_scale(code)
        except DomainError as exc:
            raise exc.at("input", "currencies", str(index)) from None
        if model.currencies and code not in model.currencies:
            raise DomainError(errors.CURRENCY_NOT_ACCEPTED, f"settlement model {model.name} does not accept {code}",
                              ["input", "currencies", str(index)])
        if code not in currencies:
            currencies.append(code)
    segment_by = list(model.segment_by or [])
    given = dict(spec.segment or [])
    if len(given) != len(spec.segment or []):
        raise DomainError(errors.VALIDATION, "a segment key appears twice", ["input", "segment"])
    segment: list[tuple[str, str]] = []
    segment_key: str | None = None
    if given:
        # A segment names one combination of the model's segmentBy values (as SettlementModel.segments lists).
        if set(given) != set(segment_by):
            raise DomainError(errors.VALIDATION, f"segment must give a value for each of the model's segmentBy "
                              f"keys ({', '.join(segment_by) or 'none'})", ["input", "segment"])
        segment = [(key, given[key]) for key in segment_by]
        segment_key = SEGMENT_SEPARATOR.join(value for _, value in segment)
    statuses: list[str] = []
    for status in spec.batch_statuses or []:
        if str(status) not in statuses:
            statuses.append(str(status))
    return Criteria(model.id, period, currencies, segment, segment_key, statuses)


def parse_batch_ids(values: Sequence[str | int]) -> list[int]:
    if len(values) > MAX_BATCH_IDS:
        raise DomainError(errors.VALIDATION, f"at most {MAX_BATCH_IDS} batch ids a call", ["batchIds"])
    ids: dict[int, None] = {}  # ordered, without repeats
    for index, value in enumerate(values):
        try:
            ids[parse_id(value, "batchIds")] = None
        except DomainError as exc:
            raise DomainError(exc.code, exc.message, ["batchIds", str(index)]) from None
    return list(ids)


def is_live(matrix: SettlementMatrix) -> bool:
    """A DYNAMIC matrix follows its criteria while OPEN; otherwise its members are listed in matrix_batch."""
    return matrix.type == MatrixType.DYNAMIC and matrix.status == MatrixStatus.OPEN


def contains(matrix: SettlementMatrix, members: set[int], batch: Batch, *, any_status: bool = False) -> bool:
    """Whether the matrix holds the batch now: by its criteria while it is a live DYNAMIC matrix, else listed.
    `any_status`: by the criteria without their batch statuses (a batch that just left by its status)."""
    if not is_live(matrix):
        return batch.id in members or batch.owner_matrix_id == matrix.id
    currencies = split_set(matrix.currencies)
    statuses = [] if any_status else split_set(matrix.batch_statuses)
    assert matrix.period_start is not None and matrix.period_end is not None
    return (
        batch.model_id == matrix.model_id  # type: ignore[attr-defined]
        and matrix.period_start <= batch.window_start < matrix.period_end
        and (not currencies or batch.currency in currencies)
        and (matrix.segment_key is None or batch.segment_key == matrix.segment_key)
        and (not statuses or batch.status in statuses)
    )


def is_settleable(matrix_status: str, batch_status: str, owned: bool) -> bool:
    """SPEC §6: an OPEN matrix may settle its OPEN and CLOSED batches (and those it locked itself); once
    settlement is requested, exactly the batches it locked; a settled matrix nothing more."""
    if matrix_status == MatrixStatus.OPEN:
        return batch_status in (BatchStatus.OPEN, BatchStatus.CLOSED) or (
            batch_status == BatchStatus.AWAITING_SETTLEMENT and owned)
    if matrix_status == MatrixStatus.AWAITING_SETTLEMENT:
        return batch_status == BatchStatus.AWAITING_SETTLEMENT and owned
    return False


def unsettleable(status: str, owner_matrix_id: int | None, matrix_id: int) -> str:
    """Why a member batch is not settled with its matrix (reported, never skipped silently)."""
    if status == BatchStatus.IN_DISPUTE:
        return "IN_DISPUTE: resolve the dispute before settling it"
    if status == BatchStatus.SETTLED:
        return f"SETTLED already, by matrix {owner_matrix_id}"
    if status == BatchStatus.AWAITING_SETTLEMENT and owner_matrix_id != matrix_id:
        return f"AWAITING_SETTLEMENT: locked by matrix {owner_matrix_id}"
    return f"{status}: not locked by this matrix when its settlement was requested"
