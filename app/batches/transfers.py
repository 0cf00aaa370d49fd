"""A cleared transfer as it arrives (SPEC §1, §3, §4): validated on its own, its model found, its batch key
computed. Pure: no database (the models are passed in)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.batches import keys
from app.batches.keys import BatchKey
from app.batches.store import NewBatch, NewTransfer
from app.core import errors, money
from app.core.checks import check_id
from app.core.errors import DomainError

MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_LENGTH = 256
# committedAt may not lie further in the future than clock skew explains, nor before this.
FUTURE_TOLERANCE = timedelta(minutes=5)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


# Built for every transfer of a call (by the API, from each TransferInput): a plain dataclass, as a frozen one's
# __init__ costs several times as much. Nothing changes a request once built.
@dataclass(slots=True)
class TransferRequest:
    transfer_id: str
    payer_id: str
    payee_id: str
    amount: str
    currency: str
    committed_at: datetime
    settlement_model: str | None = None
    attributes: Sequence[tuple[str, str]] | None = None
    refund_of: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    id: int
    name: str
    interval: int
    currencies: tuple[str, ...]
    segment_by: tuple[str, ...]
    is_active: bool
    is_default: bool


@dataclass(slots=True)
class Prepared:
    index: int
    row: NewTransfer  # batch_id still 0: assigned when filed
    key: BatchKey
    model: ModelInfo
    segment: list[tuple[str, str]]

    def new_batch(self) -> NewBatch:
        """The batch to open for this transfer's key (built once per key of a call, not per transfer)."""
        return NewBatch(self.key, self.segment, keys.window_end(self.key.window_start, self.model.interval),
                        self.model.name, self.model.interval)


def _attributes(raw: Sequence[tuple[str, str]] | None) -> list[tuple[str, str]]:
    if not raw:
        return []
    items = list(raw)
    if len(items) > MAX_ATTRIBUTES:
        raise DomainError(errors.VALIDATION, f"at most {MAX_ATTRIBUTES} attributes", ["attributes"])
    seen: set[str] = set()
    for key, value in items:
        if not key or len(key) > 64 or len(value) > MAX_ATTRIBUTE_LENGTH:
            raise DomainError(errors.VALIDATION, "attribute keys are 1-64 characters, values at most 256",
                              ["attributes"])
        if "\x00" in key or "\x00" in value:  # PostgreSQL stores no NUL character (SPEC §11)
            raise DomainError(errors.VALIDATION, "attribute keys and values may not contain NUL", ["attributes"])
        if key in seen:
            raise DomainError(errors.VALIDATION, f"attribute {key!r} appears twice", ["attributes"])
        seen.add(key)
    return items


def prepare(request: TransferRequest, index: int, models: dict[str, ModelInfo], now: datetime) -> Prepared:
    """Validate one transfer and compute its batch key: pure, no database."""
    check_id(request.transfer_id, "transferId")
    check_id(request.payer_id, "payerId")
    check_id(request.payee_id, "payeeId")
    if request.refund_of is not None:
        check_id(request.refund_of, "refundOf")
        if request.refund_of == request.transfer_id:
            raise DomainError(errors.VALIDATION, "a transfer cannot refund itself", ["refundOf"])
    if request.payer_id == request.payee_id:
        raise DomainError(errors.SAME_PARTICIPANT, "payer and payee must differ", ["payeeId"])
    try:
        amount = money.parse_positive_minor(request.amount, request.currency)
    except DomainError as exc:
        field_name = "currency" if exc.code == errors.UNKNOWN_CURRENCY else "amount"
        raise DomainError(exc.code, exc.message, [field_name]) from None
    committed_at = request.committed_at
    if committed_at.tzinfo is None:
        raise DomainError(errors.VALIDATION, "committedAt needs a UTC offset", ["committedAt"])
    committed_at = committed_at.astimezone(UTC)
    if committed_at < EARLIEST or committed_at > now + FUTURE_TOLERANCE:
        raise DomainError(
            errors.VALIDATION,
            f"committedAt {committed_at.isoformat()} is out of range (2000-01-01 to a few minutes from now)",
            ["committedAt"],
        )
    model = _model_for(request.settlement_model, models, request.currency)
    attributes = _attributes(request.attributes)
    segment = keys.segment_values(model.segment_by, dict(attributes)) if model.segment_by else []
    start = keys.window_start(committed_at, model.interval)
    key = BatchKey(model.id, request.currency, keys.segment_key(segment) if segment else "", start)
    row = NewTransfer(
        transfer_id=request.transfer_id,
        payer_id=request.payer_id,
        payee_id=request.payee_id,
        amount=amount,
        currency=request.currency,
        committed_at=committed_at,
        model_id=model.id,
        attributes=attributes,
        refund_of=request.refund_of,
        batch_id=0,
    )
    return Prepared(index, row, key, model, segment)


def _model_for(name: str | None, models: dict[str, ModelInfo], currency: str) -> ModelInfo:
    if name is None:
        model = next((m for m in models.values() if m.is_default), None)
        if model is None:
            raise DomainError(errors.UNKNOWN_MODEL, "no settlementModel given and no default model exists",
                              ["settlementModel"])
    else:
        found = models.get(name)
        if found is None:
            raise DomainError(errors.UNKNOWN_MODEL, f"unknown settlement model {name}", ["settlementModel"])
        model = found
    if not model.is_active:
        raise DomainError(errors.INACTIVE_MODEL, f"settlement model {model.name} is not active",
                          ["settlementModel"])
    if model.currencies and currency not in model.currencies:
        raise DomainError(errors.CURRENCY_NOT_ACCEPTED,
                          f"settlement model {model.name} does not accept {currency}", ["currency"])
    return model


def model_infos(rows: Sequence[dict[str, Any]]) -> dict[str, ModelInfo]:
    return {r["name"]: ModelInfo(r["id"], r["name"], r["batch_interval_seconds"],
                                 tuple(_json_list(r["currencies"])), tuple(_json_list(r["segment_by"])),
                                 bool(r["is_active"]), bool(r["is_default"])) for r in rows}


def _json_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return list(json.loads(value))
    return list(value or [])
