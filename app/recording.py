"""Recording cleared transfers into settlement batches (SPEC §1, §4).

Each transfer is validated on its own and gets its own outcome; the valid ones are filed, with their
batches' live totals, in one database transaction. Retries of the same transfer are DUPLICATE; the same
id with other content is a TRANSFER_CONFLICT. Refunds of transfers in a disputed batch go into it.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from app import audit, batching, clock, database, errors, group_commit, metrics, money
from app.batch_lifecycle import Action, BatchStatus, StatusChange, apply
from app.batch_store import MODELS_SQL, BatchStore, NewBatch, TransferRow, store_for
from app.batching import BatchKey
from app.errors import DomainError
from app.group_commit import GroupWriter

log = logging.getLogger(__name__)

MAX_TRANSFERS_PER_CALL = 5_000
MAX_ID_LENGTH = 128
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_LENGTH = 256
# committedAt may not lie further in the future than clock skew explains, nor before this.
FUTURE_TOLERANCE = timedelta(minutes=5)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
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


@dataclass
class Outcome:
    transfer_id: str
    outcome: str  # RECORDED | DUPLICATE | REJECTED
    batch_id: int | None = None
    error: DomainError | None = None


@dataclass
class RecordingResult:
    outcomes: list[Outcome]
    status_changes: list[StatusChange] = field(default_factory=list)
    created_batch_ids: list[int] = field(default_factory=list)
    touched_batch_ids: set[int] = field(default_factory=set)

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)


@dataclass(slots=True)
class Prepared:
    index: int
    row: TransferRow  # batch_id still 0: assigned when filed
    key: BatchKey
    new_batch: NewBatch


_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f]")


def _check_id(value: str, name: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise DomainError(errors.VALIDATION, f"{name} must not be empty", [name])
    if len(value) > MAX_ID_LENGTH:
        raise DomainError(errors.VALIDATION, f"{name} is longer than {MAX_ID_LENGTH} characters", [name])
    if value != value.strip() or _CONTROL_CHARACTER.search(value):
        raise DomainError(errors.VALIDATION, f"{name} has surrounding spaces or control characters", [name])


def _attributes(raw: Sequence[tuple[str, str]] | None) -> list[tuple[str, str]]:
    items = list(raw or [])
    if len(items) > MAX_ATTRIBUTES:
        raise DomainError(errors.VALIDATION, f"at most {MAX_ATTRIBUTES} attributes", ["attributes"])
    seen: set[str] = set()
    for key, value in items:
        if not key or len(key) > 64 or len(value) > MAX_ATTRIBUTE_LENGTH:
            raise DomainError(errors.VALIDATION, "attribute keys are 1-64 characters, values at most 256",
                              ["attributes"])
        if key in seen:
            raise DomainError(errors.VALIDATION, f"attribute {key!r} appears twice", ["attributes"])
        seen.add(key)
    return items


def prepare(request: TransferRequest, index: int, models: dict[str, ModelInfo], now: datetime) -> Prepared:
    """Validate one transfer and compute its batch key: pure, no database."""
    _check_id(request.transfer_id, "transferId")
    _check_id(request.payer_id, "payerId")
    _check_id(request.payee_id, "payeeId")
    if request.refund_of is not None:
        _check_id(request.refund_of, "refundOf")
        if request.refund_of == request.transfer_id:
            raise DomainError(errors.VALIDATION, "a transfer cannot refund itself", ["refundOf"])
    if request.payer_id == request.payee_id:
        raise DomainError(errors.SAME_PARTICIPANT, "payer and payee must differ", ["payeeId"])
    try:
        amount = money.positive_minor(money.parse_decimal(request.amount), request.currency)
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
    segment = batching.segment_values(model.segment_by, dict(attributes))
    start = batching.window_start(committed_at, model.interval)
    key = BatchKey(model.id, request.currency, batching.segment_key(segment), start)
    row = TransferRow(
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
        fingerprint=batching.fingerprint(request.payer_id, request.payee_id, amount, request.currency,
                                         committed_at, model.name, attributes, request.refund_of),
    )
    new_batch = NewBatch(key, segment, batching.window_end(start, model.interval), model.name, model.interval)
    return Prepared(index, row, key, new_batch)


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


async def load_models(store: BatchStore) -> dict[str, ModelInfo]:
    return model_infos(await store.rows(MODELS_SQL))


def model_infos(rows: Sequence[dict[str, Any]]) -> dict[str, ModelInfo]:
    return {r["name"]: ModelInfo(r["id"], r["name"], r["batch_interval_seconds"],
                                 tuple(_json_list(r["currencies"])), tuple(_json_list(r["segment_by"])),
                                 bool(r["is_active"]), bool(r["is_default"])) for r in rows}


def _json_list(value: Any) -> list[str]:
    import json

    if isinstance(value, str):
        return list(json.loads(value))
    return list(value or [])


async def record_transfers(
    requests: Sequence[TransferRequest],
    actor: str,
    audit_entry: Callable[[RecordingResult], audit.Entry] | None = None,
) -> RecordingResult:
    """Record in a transaction of its own, retried on deadlocks. `audit_entry(result)` gives the call's audit
    entry, written in the same transaction, so one commit carries both.

    Calls of up to GROUP_CALL_LIMIT transfers that arrive while another one is being written share the next
    transaction (group commit, app/group_commit.py); each keeps its own outcomes, and a group that fails is written
    again call by call, so one call's failure never fails another."""
    if len(requests) > MAX_TRANSFERS_PER_CALL:
        raise DomainError(errors.TOO_MANY_TRANSFERS,
                          f"at most {MAX_TRANSFERS_PER_CALL} transfers a call, got {len(requests)}", ["transfers"])
    call = _Call(requests, actor, audit_entry)
    if len(requests) > GROUP_CALL_LIMIT:
        return (await _write([call]))[0]
    return await _groups().submit(call)


async def file_transfers(conn: Any, requests: Sequence[TransferRequest], actor: str) -> RecordingResult:
    """Record transfers inside the caller's open transaction `conn` (e.g. a grant commit that must file its
    transfer atomically with the grant's spent amounts). Publishing events is the caller's job, after commit."""
    return (await _record(store_for(conn), [requests], actor))[0]


async def file_calls(conn: Any, calls: Sequence[Sequence[TransferRequest]], actor: str) -> list[RecordingResult]:
    """file_transfers for several calls at once, as if they came one after the other (e.g. a group of grant
    commits): one result per call."""
    return await _record(store_for(conn), calls, actor)


# -- group commit ------------------------------------------------------------------------------------

# Small calls share transactions (app/group_commit.py); a group holds at most a call's worth of transfers, and
# only calls of one actor (recorded on the batches a group opens).
GROUP_CALL_LIMIT = 100


@dataclass(slots=True)
class _Call:
    requests: Sequence[TransferRequest]
    actor: str
    audit_entry: Callable[[RecordingResult], audit.Entry] | None


def _groups() -> GroupWriter[_Call, RecordingResult]:
    return group_commit.writer("recordTransfers", lambda: GroupWriter(
        "recordTransfers", _write, limit=MAX_TRANSFERS_PER_CALL, size=lambda call: len(call.requests),
        key=lambda call: call.actor))


async def _write(calls: Sequence[_Call]) -> list[RecordingResult]:
    """Record the calls in one transaction (retried on deadlocks), with their audit entries."""
    async def transaction() -> list[RecordingResult]:
        async with in_transaction() as conn:
            results = await _record(store_for(conn), [c.requests for c in calls], calls[0].actor)
            entries = [c.audit_entry(r) for c, r in zip(calls, results, strict=True) if c.audit_entry is not None]
            if entries:
                await audit.insert(conn, entries)
        for entry in entries:
            audit.log_entry(entry)
        for result in results:
            for outcome in result.outcomes:
                metrics.TRANSFERS.labels(outcome=outcome.outcome).inc()
        return results

    return await database.retrying_deadlocks(transaction, "recordTransfers")


# -- recording ---------------------------------------------------------------------------------------

async def _record(store: BatchStore, calls: Sequence[Sequence[TransferRequest]], actor: str) -> list[RecordingResult]:
    """Validate and file the transfers of one or more calls in the caller's transaction: as if the calls came
    one after the other (a transfer id seen in an earlier call is a DUPLICATE or TRANSFER_CONFLICT); each
    call's outcomes carry its own indexes."""
    now = clock.now()
    requests = [r for call in calls for r in call]
    local = [i for call in calls for i in range(len(call))]  # each transfer's index within its call
    # The transfers already stored are looked up with the models, before validation, to save a round trip.
    model_rows, existing = await store.models_and_transfers([r.transfer_id for r in requests])
    models = model_infos(model_rows)
    outcomes: list[Outcome] = [Outcome(r.transfer_id, "REJECTED") for r in requests]
    valid: list[Prepared] = []
    first_seen: dict[str, Prepared] = {}
    for index, request in enumerate(requests):
        try:
            prepared = prepare(request, index, models, now)
        except DomainError as exc:
            outcomes[index].error = exc.at("transfers", str(local[index]))
            continue
        earlier = first_seen.get(prepared.row.transfer_id)
        if earlier is not None:  # the same id twice in one call (or group): settled against the first
            if earlier.row.fingerprint == prepared.row.fingerprint:
                outcomes[index].outcome = "DUPLICATE"
            else:
                outcomes[index].error = _conflict(prepared.row.transfer_id, local[index])
            continue
        first_seen[prepared.row.transfer_id] = prepared
        valid.append(prepared)

    result = RecordingResult(outcomes)
    if valid:
        await _file(store, valid, existing, actor, now, result, local)
    _link_in_call_duplicates(result, first_seen)
    return _split(result, [len(call) for call in calls])


async def _file(store: BatchStore, valid: list[Prepared], existing: dict[str, tuple[str, int]], actor: str,
                now: datetime, result: RecordingResult, local: list[int]) -> None:
    outcomes = result.outcomes
    fresh = [p for p in valid if not _settle_existing(p, existing, outcomes, local)]

    refund_targets = await _disputed_refund_targets(store, fresh)
    targets = await _open_batches(store, {p.key: p.new_batch for p in fresh if p.index not in refund_targets},
                                  actor, now, result)
    for p in fresh:
        p.row.batch_id = refund_targets.get(p.index) or targets[p.key]
    rows = [p.row for p in fresh]
    inserted = await store.file_rows(rows, now, result.created_batch_ids) if rows else set()
    if len(inserted) < len(rows):  # lost a race to a concurrent call recording the same ids
        raced = await store.existing_transfers([r.transfer_id for r in rows if r.transfer_id not in inserted])
        for p in fresh:
            if p.row.transfer_id not in inserted:
                _settle_existing(p, raced, outcomes, local)
    filed = [r for r in rows if r.transfer_id in inserted]
    by_id = {r.transfer_id: r for r in filed}
    for p in fresh:
        row = by_id.get(p.row.transfer_id)
        if row is not None:
            outcomes[p.index].outcome = "RECORDED"
            outcomes[p.index].batch_id = row.batch_id
            result.touched_batch_ids.add(row.batch_id)

    reopened = sorted({refund_targets[p.index] for p in fresh if p.index in refund_targets
                       and p.row.transfer_id in inserted})
    if reopened:
        changes, _ = await apply(store, reopened, Action.REFUND, actor=actor, reason="refund", now=now)
        result.status_changes.extend(changes)


def _split(result: RecordingResult, sizes: Sequence[int]) -> list[RecordingResult]:
    """The result of each call of a group: its outcomes, the batches it filed into, and the status changes
    (batches opened, refunds) of those batches, each given to the first call that filed into it."""
    if len(sizes) == 1:
        return [result]
    results: list[RecordingResult] = []
    start = 0
    unclaimed = list(result.status_changes)
    created = set(result.created_batch_ids)
    for size in sizes:
        outcomes = result.outcomes[start:start + size]
        start += size
        touched = {o.batch_id for o in outcomes if o.outcome == "RECORDED" and o.batch_id is not None}
        mine = [c for c in unclaimed if c.batch_id in touched]
        unclaimed = [c for c in unclaimed if c.batch_id not in touched]
        results.append(RecordingResult(outcomes, mine, sorted({c.batch_id for c in mine} & created), touched))
    if unclaimed:  # a batch opened for transfers that another call filed first: reported by the first call
        results[0].status_changes.extend(unclaimed)
    return results


def _conflict(transfer_id: str, index: int) -> DomainError:
    return DomainError(errors.TRANSFER_CONFLICT,
                       f"transfer {transfer_id} was already recorded with different content",
                       ["transfers", str(index), "transferId"])


def _settle_existing(p: Prepared, existing: dict[str, tuple[str, int]], outcomes: list[Outcome],
                     local: list[int]) -> bool:
    found = existing.get(p.row.transfer_id)
    if found is None:
        return False
    fingerprint, batch_id = found
    if fingerprint == p.row.fingerprint:
        outcomes[p.index].outcome = "DUPLICATE"
        outcomes[p.index].batch_id = batch_id
    else:
        outcomes[p.index].error = _conflict(p.row.transfer_id, local[p.index])
    return True


def _link_in_call_duplicates(result: RecordingResult, first_seen: dict[str, Prepared]) -> None:
    for outcome in result.outcomes:
        if outcome.outcome == "DUPLICATE" and outcome.batch_id is None:
            first = first_seen.get(outcome.transfer_id)
            if first is not None:
                outcome.batch_id = result.outcomes[first.index].batch_id


async def _disputed_refund_targets(store: BatchStore, fresh: Sequence[Prepared]) -> dict[int, int]:
    """Refunds whose original lies in an IN_DISPUTE batch: transfer index -> that batch's id."""
    refunds = [p for p in fresh if p.row.refund_of]
    if not refunds:
        return {}
    originals = await store.existing_transfers([p.row.refund_of for p in refunds if p.row.refund_of])
    candidate_batches = {batch_id for _, batch_id in originals.values()}
    if not candidate_batches:
        return {}
    locked = await store.lock_batches(sorted(candidate_batches), exclusive=True)
    targets: dict[int, int] = {}
    for p in refunds:
        original = originals.get(p.row.refund_of or "")
        if original is None:
            continue
        batch = locked.get(original[1])
        if batch is not None and batch.status == BatchStatus.IN_DISPUTE:
            targets[p.index] = batch.id
    return targets


async def _open_batches(
    store: BatchStore, wanted: dict[BatchKey, NewBatch], actor: str, now: datetime, result: RecordingResult
) -> dict[BatchKey, int]:
    """The OPEN batch of every key, locked FOR SHARE; creates the next sequence where the last is not OPEN."""
    resolved: dict[BatchKey, int] = {}
    pending = sorted(wanted, key=lambda k: (k.model_id, k.currency, k.segment_key, k.window_start))
    for _ in range(100):
        if not pending:
            return resolved
        locked = await store.latest_batches_locked(pending)
        retry: list[BatchKey] = []
        for key in pending:
            current = locked.get(key)
            if current is not None and current.status == BatchStatus.OPEN:
                resolved[key] = current.id
                continue
            sequence = (current.sequence if current else 0) + 1
            spec = wanted[key]
            name = batching.batch_name(spec.model_name, key.currency, spec.segment, key.window_start,
                                       spec.interval_seconds, sequence)
            created = await store.create_batch(spec, sequence, name, now)
            if created is None:
                retry.append(key)  # a concurrent recorder created it: look again
                continue
            resolved[key] = created
            result.created_batch_ids.append(created)
            change = StatusChange(created, None, BatchStatus.OPEN, now, actor, "created", None)
            result.status_changes.append(change)
            await store.add_history([(created, None, BatchStatus.OPEN)], now, actor, "created", None)
        pending = retry
    raise DomainError(errors.INTERNAL, "could not find an open batch after repeated attempts")
