"""Payment grants themselves (SPEC §9): creating one (an audited command) and reading what it has spent."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app import audit
from app.auth import Principal
from app.core import clock
from app.core.checks import parse_id
from app.core.errors import DomainError
from app.db.connection import connection
from app.grants.rules import GrantRequest, GrantTerms, Spent, Sums, spent_view, validate_grant
from app.grants.store import GrantStore
from models.grants import Grant


async def create_grant(request: GrantRequest, caller: Principal | None) -> Grant:
    """Check and store a grant; audited as createGrant on the payer, noting the new grant's id."""
    command = audit.Command(caller, "createGrant", request.payer_id)

    async def create(conn: Any) -> Grant:
        spec = validate_grant(request)
        grant = await Grant.create(
            using_db=conn, payer_id=spec.payer_id, payee_id=spec.payee_id, limit_kind=spec.limit_kind,
            limit_amount=spec.limit_amount, currency=spec.currency, interval=spec.interval,
            created_by=command.actor, created_at=clock.now(),
        )
        command.note(grant_id=grant.id)
        return grant

    return await audit.run(command, create)


def grant_number(grant_id: str | int) -> int | None:
    """A grant id as the API carries it; None when it cannot be one (so no grant has it)."""
    try:
        return parse_id(grant_id, "id")
    except DomainError:
        return None


async def find_grant(grant_id: str | int) -> Grant | None:
    number = grant_number(grant_id)
    return await Grant.get_or_none(id=number) if number is not None else None


def terms_of(grant: Grant) -> GrantTerms:
    return GrantTerms(grant.id, grant.payer_id, grant.payee_id, grant.limit_kind, grant.limit_amount, grant.currency,
                      grant.interval)


@dataclass(frozen=True)
class GrantSpending:
    """A grant and what it has spent."""

    grant: Grant
    spent: Spent


async def spent_of(grant_ids: Sequence[int], at: datetime | None = None) -> list[GrantSpending | None]:
    """The grants of these ids (None for an unknown id) with their spent amounts in the period containing `at`
    (default now): two reads however many grants (the DataLoader's batch function)."""
    found = {g.id: g for g in await Grant.filter(id__in=list(set(grant_ids)))}
    spent = await _spent([terms_of(g) for g in found.values()], at or clock.now())
    return [GrantSpending(found[i], spent[i]) if i in found else None for i in grant_ids]


async def spent(grant: Grant, at: datetime | None = None) -> Spent:
    """SPEC §9: what the grant has spent in the period containing `at` (default now), or overall."""
    return (await _spent([terms_of(grant)], at or clock.now()))[grant.id]


async def _spent(grants: Sequence[GrantTerms], moment: datetime) -> dict[int, Spent]:
    periods = {g.id: g.period_at(moment) for g in grants}
    limited = [g for g in grants if g.limited]
    keys = [(g.id, p.index if (p := periods[g.id]) else None) for g in limited]
    sums = await GrantStore.on(connection()).latest_sums(keys) if keys else []
    found = dict(zip([g.id for g in limited], sums, strict=True))
    return {g.id: spent_view(g, periods[g.id], found.get(g.id, Sums())) for g in grants}
