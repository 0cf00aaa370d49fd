"""Finding batches (SPEC §5): by id, by name, or by the id of a transfer they hold; filtering their list."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tortoise.queryset import QuerySet

from app.core import errors
from app.core.checks import parse_id
from app.core.errors import DomainError
from app.db.columns import fits
from models.settlement import Batch, SettlementModel, Transfer


@dataclass(frozen=True)
class BatchRef:
    id: str | None = None
    name: str | None = None
    transfer_id: str | None = None

    @property
    def given(self) -> str | None:
        return self.id or self.name or self.transfer_id


@dataclass(frozen=True)
class BatchFilter:
    model: str | None = None
    currencies: Sequence[str] | None = None
    statuses: Sequence[str] | None = None
    window_from: datetime | None = None
    window_to: datetime | None = None
    in_any_matrix: bool | None = None  # applied by app/matrices/membership.py, which knows the matrices


async def resolve_ref(ref: BatchRef) -> int:
    """The id of the batch a ref names: by id, by name, or by a transfer it holds (exactly one)."""
    given = [name for name, value in (("id", ref.id), ("name", ref.name), ("transferId", ref.transfer_id))
             if value is not None]
    if len(given) != 1:
        raise DomainError(errors.VALIDATION, "give exactly one of id, name or transferId", ["ref"])
    found: Sequence[object] = []
    if ref.id is not None:
        batch_id = parse_id(ref.id, "ref")
        found = await Batch.filter(id=batch_id).values_list("id", flat=True)
    elif ref.name is not None:
        if fits(Batch, "name", ref.name):
            found = await Batch.filter(name=ref.name).values_list("id", flat=True)
    elif ref.transfer_id is not None and fits(Transfer, "transfer_id", ref.transfer_id):
        found = await Transfer.filter(transfer_id=ref.transfer_id).values_list("batch_id", flat=True)
    if not found:
        raise DomainError(errors.NOT_FOUND, f"no batch for {given[0]} {ref.given}", ["ref", given[0]])
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
    """The batches' own columns of a filter (model, currencies, statuses, window)."""
    if flt is None:
        return query
    if flt.model is not None:  # a name longer than the column names no model: nothing matches
        query = query.filter(model__name=flt.model if fits(SettlementModel, "name", flt.model) else "")
    if flt.currencies:
        query = query.filter(currency__in=[c for c in flt.currencies if fits(Batch, "currency", c)])
    if flt.statuses:
        query = query.filter(status__in=[str(s) for s in flt.statuses])
    if flt.window_from is not None:
        query = query.filter(window_start__gte=flt.window_from)
    if flt.window_to is not None:
        query = query.filter(window_start__lt=flt.window_to)
    return query
