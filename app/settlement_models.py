"""Settlement models (SPEC §3): validation, creation, activation, the default model, the change log."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import audit
from app.auth import Principal
from app.batches.keys import SECONDS_PER_DAY
from app.core import clock, errors, money
from app.core.errors import DomainError
from app.db.columns import fits
from app.db.dialect import POSTGRES, dialect_of
from models.settlement import SettlementModel, SettlementModelChange

NAME = re.compile(r"^[A-Z0-9_-]{1,64}$")
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
DEFAULT_MODEL_NAME = "DEFAULT"
DEFAULT_INTERVAL_SECONDS = 900


@dataclass(frozen=True)
class ModelSpec:
    name: str
    batch_interval_seconds: int
    currencies: list[str]
    segment_by: list[str]
    is_default: bool


def validate_spec(
    name: str,
    batch_interval_seconds: int,
    currencies: Sequence[str] | None,
    segment_by: Sequence[str] | None,
    is_default: bool | None,
) -> ModelSpec:
    if not NAME.match(name or ""):
        raise DomainError(
            errors.VALIDATION, "name must be 1-64 upper case letters, digits, '_' or '-'", ["name"]
        )
    if (
        not isinstance(batch_interval_seconds, int)
        or batch_interval_seconds <= 0
        or SECONDS_PER_DAY % batch_interval_seconds
    ):
        raise DomainError(
            errors.VALIDATION,
            f"batchIntervalSeconds must divide 86400 (1, 5, 60, 900, 3600, 86400 …), got {batch_interval_seconds}",
            ["batchIntervalSeconds"],
        )
    codes: list[str] = []
    for index, code in enumerate(currencies or []):
        try:
            money.currency_scale(code)
        except DomainError as exc:
            raise exc.at("currencies", str(index)) from None
        if code not in codes:
            codes.append(code)
    keys: list[str] = []
    for index, key in enumerate(segment_by or []):
        if not ATTRIBUTE_KEY.match(key or ""):
            raise DomainError(errors.VALIDATION, f"segmentBy key {key!r} is not a valid attribute key",
                              ["segmentBy", str(index)])
        if key in keys:
            raise DomainError(errors.VALIDATION, f"segmentBy repeats {key!r}", ["segmentBy", str(index)])
        keys.append(key)
    return ModelSpec(name, batch_interval_seconds, codes, keys, bool(is_default))


async def create_model(caller: Principal | None, name: str, batch_interval_seconds: int,
                       currencies: Sequence[str] | None = None, segment_by: Sequence[str] | None = None,
                       is_default: bool | None = None) -> SettlementModel:
    """Create a model (audited); a new default takes the flag from the previous one in the same transaction."""
    command = audit.Command(caller, "createSettlementModel", name)

    async def work(conn: Any) -> SettlementModel:
        checked = validate_spec(name, batch_interval_seconds, currencies, segment_by, is_default)
        try:
            async with in_transaction():  # a savepoint: a name taken meanwhile leaves the transaction usable
                return await _create(conn, checked, command.actor)
        except IntegrityError:
            if await SettlementModel.filter(name=checked.name).exists():  # created meanwhile under that name
                raise DomainError(errors.DUPLICATE_NAME, f"a settlement model named {checked.name} exists",
                                  ["name"]) from None
            raise

    return await audit.run(command, work)


# Transactions that make a model the default take this lock first (PostgreSQL; SQLite has one writer), so the
# next one reads the default the previous one left: defaults created at once all succeed, one after the other.
_DEFAULT_LOCK = "SELECT pg_advisory_xact_lock(726273657474)"


async def _create(conn: Any, spec: ModelSpec, actor: str) -> SettlementModel:
    now = clock.now()
    if spec.is_default and dialect_of(conn) == POSTGRES:
        await conn.execute_query(_DEFAULT_LOCK)
    if await SettlementModel.filter(name=spec.name).exists():
        raise DomainError(errors.DUPLICATE_NAME, f"a settlement model named {spec.name} exists", ["name"])
    if spec.is_default:
        previous_default = await SettlementModel.filter(is_default=True).first()
        if previous_default is not None:
            previous_default.is_default = False
            previous_default.updated_at = now
            await previous_default.save(update_fields=["is_default", "updated_at"])
            await _log(previous_default, actor, "UNSET_DEFAULT", {"isDefault": False})
    model = await SettlementModel.create(
        name=spec.name,
        batch_interval_seconds=spec.batch_interval_seconds,
        currencies=spec.currencies,
        segment_by=spec.segment_by,
        is_active=True,
        is_default=spec.is_default,
        created_at=now,
        updated_at=now,
    )
    await _log(model, actor, "CREATE", {
        "batchIntervalSeconds": spec.batch_interval_seconds,
        "currencies": spec.currencies,
        "segmentBy": spec.segment_by,
        "isDefault": spec.is_default,
    })
    return model


async def set_active(name: str, active: bool, caller: Principal | None) -> SettlementModel:
    command = audit.Command(caller, "setSettlementModelActive", name)

    async def work(conn: Any) -> SettlementModel:
        model = await SettlementModel.get_or_none(name=name) if fits(SettlementModel, "name", name) else None
        if model is None:
            raise DomainError(errors.NOT_FOUND, f"no settlement model named {name}", ["name"])
        if model.is_active != active:
            model.is_active = active
            model.updated_at = clock.now()
            await model.save(update_fields=["is_active", "updated_at"])
            await _log(model, command.actor, "ACTIVATE" if active else "DEACTIVATE", {"isActive": active})
        return model

    return await audit.run(command, work)


async def ensure_default_model() -> None:
    """A fresh database offers DEFAULT (15-minute windows, any currency)."""
    if await SettlementModel.all().exists():
        return
    now = clock.now()
    async with in_transaction():
        model = await SettlementModel.create(
            name=DEFAULT_MODEL_NAME,
            batch_interval_seconds=DEFAULT_INTERVAL_SECONDS,
            currencies=[],
            segment_by=[],
            is_active=True,
            is_default=True,
            created_at=now,
            updated_at=now,
        )
        await SettlementModelChange.create(
            model=model, actor="system", action="CREATE",
            changes={"batchIntervalSeconds": DEFAULT_INTERVAL_SECONDS, "isDefault": True}, at=now,
        )


async def _log(model: SettlementModel, actor: str, action: str, changes: dict[str, object]) -> None:
    await SettlementModelChange.create(model=model, actor=actor, action=action, changes=changes, at=clock.now())
