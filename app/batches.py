"""Finding batches and changing one batch's status (SPEC §4, §5)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tortoise.expressions import RawSQL
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app import clock, errors
from app.batch_lifecycle import Action, StatusChange, apply_one
from app.batch_store import store_for
from app.errors import DomainError
from app.matrix_totals import IN_ANY_MATRIX_SQL
from models.settlement import Batch, Transfer


@dataclass(frozen=True)
class BatchRef:
    id: str | None = None
    name: str | None = None
    transfer_id: str | None = None


@dataclass(frozen=True)
class BatchFilter:
    model: str | None = None
    currencies: Sequence[str] | None = None
    statuses: Sequence[str] | None = None
    window_from: datetime | None = None
    window_to: datetime | None = None
    in_any_matrix: bool | None = None


def parse_id(value: str | int, field: str = "id") -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise DomainError(errors.VALIDATION, f"{value!r} is not a valid id", [field]) from None
    if number <= 0 or number > 2**63 - 1:
        raise DomainError(errors.VALIDATION, f"{value!r} is not a valid id", [field])
    return number


async def resolve_ref(ref: BatchRef) -> int:
    """The id of the batch a ref names: by id, by name, or by a transfer it holds (exactly one)."""
    given = [name for name, value in (("id", ref.id), ("name", ref.name), ("transferId", ref.transfer_id))
             if value is not None]
    if len(given) != 1:
        raise DomainError(errors.VALIDATION, "give exactly one of id, name or transferId", ["ref"])
    if ref.id is not None:
        batch_id = parse_id(ref.id, "ref")
        found = await Batch.filter(id=batch_id).values_list("id", flat=True)
    elif ref.name is not None:
        found = await Batch.filter(name=ref.name).values_list("id", flat=True)
    else:
        found = await Transfer.filter(transfer_id=ref.transfer_id).values_list("batch_id", flat=True)
    if not found:
        raise DomainError(errors.NOT_FOUND, f"no batch for {given[0]} {ref.id or ref.name or ref.transfer_id}",
                          ["ref", given[0]])
    return int(found[0])  # type: ignore[call-overload]


async def find(ref: BatchRef) -> Batch | None:
    try:
        batch_id = await resolve_ref(ref)
    except DomainError as exc:
        if exc.code == errors.NOT_FOUND:
            return None
        raise
    return await Batch.get_or_none(id=batch_id)


def filtered(query: QuerySet[Batch], flt: BatchFilter | None) -> QuerySet[Batch]:
    if flt is None:
        return query
    if flt.model is not None:
        query = query.filter(model__name=flt.model)
    if flt.currencies:
        query = query.filter(currency__in=list(flt.currencies))
    if flt.statuses:
        query = query.filter(status__in=[str(s) for s in flt.statuses])
    if flt.window_from is not None:
        query = query.filter(window_start__gte=flt.window_from)
    if flt.window_to is not None:
        query = query.filter(window_start__lt=flt.window_to)
    if flt.in_any_matrix is not None:
        query = query.annotate(in_any_matrix=RawSQL(IN_ANY_MATRIX_SQL)).filter(
            in_any_matrix=1 if flt.in_any_matrix else 0)
    return query


async def change_status(ref: BatchRef, action: Action, actor: str, reason: str | None) -> tuple[int, StatusChange]:
    batch_id = await resolve_ref(ref)
    if reason is not None and len(reason) > 512:
        raise DomainError(errors.VALIDATION, "reason is longer than 512 characters", ["reason"])
    async with in_transaction() as conn:
        change = await apply_one(store_for(conn), batch_id, action, actor=actor, reason=reason, now=clock.now())
    return batch_id, change
