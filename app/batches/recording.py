"""Recording cleared transfers into settlement batches (SPEC §1, §4).

Each transfer is validated on its own (app/batches/transfers.py) and gets its own outcome; the valid ones are
filed, with their batches' live totals, in one database transaction. Retries of the same transfer are DUPLICATE;
the same id with other content is a TRANSFER_CONFLICT. Refunds of transfers in a disputed batch go into it.
"""
from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from app import audit
from app.auth import Principal
from app.batches import keys
from app.batches.keys import BatchKey
from app.batches.lifecycle import apply, publish_changes
from app.batches.status import Action, BatchStatus, StatusChange
from app.batches.store import BatchStore, NewBatch, StoredTransfer
from app.batches.transfers import Prepared, TransferRequest, model_infos, prepare
from app.core import clock, errors, metrics
from app.core.errors import DomainError
from app.db import group_commit
from app.db.group_commit import GroupWriter
from app.db.retry import retrying_deadlocks

MAX_TRANSFERS_PER_CALL = 5_000


class TransferOutcome(enum.StrEnum):
    RECORDED = "RECORDED"
    DUPLICATE = "DUPLICATE"
    REJECTED = "REJECTED"


RECORDED, DUPLICATE, REJECTED = TransferOutcome.RECORDED, TransferOutcome.DUPLICATE, TransferOutcome.REJECTED
# The counts of outcomes a call's audit entry carries.
COUNTS = (("recorded", RECORDED), ("duplicates", DUPLICATE), ("rejected", REJECTED))


@dataclass(frozen=True, eq=False)
class TransfersFiled:
    """The event of transfers filed into these batches (their totals moved), published after commit."""

    batch_ids: tuple[int, ...]

    @classmethod
    def of(cls, batch_ids: Sequence[int] | set[int]) -> TransfersFiled | None:
        ids = tuple(sorted(set(batch_ids)))
        return cls(ids) if ids else None


@dataclass(slots=True)  # one a transfer
class Outcome:
    transfer_id: str
    outcome: TransferOutcome
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


async def record_transfers(requests: Sequence[TransferRequest], caller: Principal | None, *,
                           operation: str = "recordTransfers", target: str | None = None) -> RecordingResult:
    """Record in a transaction of its own, retried on deadlocks, with the call's audit entry (its counts of
    outcomes) written in the same transaction, so one commit carries both. `operation` and `target` name the
    call in the audit log (the stream consumer files a fetched batch of events as one call).

    Calls of up to GROUP_CALL_LIMIT transfers that arrive while another one is being written share the next
    transaction (group commit, app/db/group_commit.py); each keeps its own outcomes and audit entry, and a group
    that fails is written again call by call, so one call's failure never fails another."""
    command = audit.Command(caller, operation, target or f"{len(requests)} transfer(s)")
    return await audit.submitted(command, _submit(_Call(requests, command)))


async def _submit(call: _Call) -> RecordingResult:
    if len(call.requests) > MAX_TRANSFERS_PER_CALL:
        raise DomainError(errors.TOO_MANY_TRANSFERS,
                          f"at most {MAX_TRANSFERS_PER_CALL} transfers a call, got {len(call.requests)}",
                          ["transfers"])
    if len(call.requests) > GROUP_CALL_LIMIT:
        return (await _write([call]))[0]
    return await _groups().submit(call)


async def file_transfers(conn: Any, requests: Sequence[TransferRequest], actor: str) -> RecordingResult:
    """Record transfers inside the caller's open transaction `conn` (e.g. a grant commit that must file its
    transfer atomically with the grant's spent amounts). Publishing events is the caller's job, after commit."""
    return (await _record(BatchStore.on(conn), [requests], actor))[0]


async def file_calls(conn: Any, calls: Sequence[Sequence[TransferRequest]], actor: str) -> list[RecordingResult]:
    """file_transfers for several calls at once, as if they came one after the other (e.g. a group of grant
    commits): one result per call."""
    return await _record(BatchStore.on(conn), calls, actor)


# -- group commit ------------------------------------------------------------------------------------

# Small calls share transactions (app/db/group_commit.py); a group holds at most a call's worth of transfers, and
# only calls of one actor (recorded on the batches a group opens).
GROUP_CALL_LIMIT = 100


@dataclass(slots=True)
class _Call:
    requests: Sequence[TransferRequest]
    command: audit.Command

    @property
    def actor(self) -> str:
        return self.command.actor


def _groups() -> GroupWriter[_Call, RecordingResult]:
    return group_commit.writer("recordTransfers", lambda: GroupWriter(
        "recordTransfers", _write, limit=MAX_TRANSFERS_PER_CALL, size=lambda call: len(call.requests),
        key=lambda call: call.actor))


async def _write(calls: Sequence[_Call]) -> list[RecordingResult]:
    """Record the calls in one transaction (retried on deadlocks), with their audit entries."""
    async def transaction() -> list[RecordingResult]:
        async with in_transaction() as conn:
            results = await _record(BatchStore.on(conn), [c.requests for c in calls], calls[0].actor)
            counts = [{key: result.count(outcome) for key, outcome in COUNTS} for result in results]
            for call, counted in zip(calls, counts, strict=True):
                call.command.note(**counted)
            entries = [call.command.entry() for call in calls]
            await audit.insert(conn, entries)
        for entry in entries:
            audit.log_entry(entry)
        for counted in counts:  # one increment per outcome, not per transfer: labels() costs a lookup each time
            for key, outcome in COUNTS:
                if counted[key]:
                    metrics.TRANSFERS.labels(outcome=outcome).inc(counted[key])
        return results

    return await retrying_deadlocks(transaction, "recordTransfers")


# -- recording ---------------------------------------------------------------------------------------

async def _record(store: BatchStore, calls: Sequence[Sequence[TransferRequest]], actor: str) -> list[RecordingResult]:
    """Validate and file the transfers of one or more calls in the caller's transaction: as if the calls came
    one after the other (a transfer id seen in an earlier call is a DUPLICATE or TRANSFER_CONFLICT); each
    call's outcomes carry its own indexes."""
    now = clock.now()
    requests = [r for call in calls for r in call]
    local = [i for call in calls for i in range(len(call))]  # each transfer's index within its call
    # The transfers already stored are looked up with the models, before validation, to save a round trip.
    # (An id with a NUL character was never stored, and PostgreSQL cannot even compare one: validation refuses it.)
    model_rows, existing = await store.models_and_transfers([r.transfer_id for r in requests
                                                             if "\x00" not in r.transfer_id])
    models = model_infos(model_rows)
    outcomes: list[Outcome] = [Outcome(r.transfer_id, REJECTED) for r in requests]
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
            if earlier.row.content() == prepared.row.content():
                outcomes[index].outcome = DUPLICATE
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


async def _file(store: BatchStore, valid: list[Prepared], existing: dict[str, StoredTransfer], actor: str,
                now: datetime, result: RecordingResult, local: list[int]) -> None:
    outcomes = result.outcomes
    fresh = [p for p in valid if not _settle_existing(p, existing, outcomes, local)]

    refund_targets = await _disputed_refund_targets(store, fresh)
    wanted: dict[BatchKey, NewBatch] = {}
    for p in fresh:
        if p.key not in wanted and p.index not in refund_targets:
            wanted[p.key] = p.new_batch()
    targets = await _open_batches(store, wanted, actor, now, result)
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
            outcomes[p.index].outcome = RECORDED
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
        touched = {o.batch_id for o in outcomes if o.outcome == RECORDED and o.batch_id is not None}
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


def _settle_existing(p: Prepared, existing: dict[str, StoredTransfer], outcomes: list[Outcome],
                     local: list[int]) -> bool:
    found = existing.get(p.row.transfer_id)
    if found is None:
        return False
    if found.content == p.row.content():
        outcomes[p.index].outcome = DUPLICATE
        outcomes[p.index].batch_id = found.batch_id
    else:
        outcomes[p.index].error = _conflict(p.row.transfer_id, local[p.index])
    return True


def _link_in_call_duplicates(result: RecordingResult, first_seen: dict[str, Prepared]) -> None:
    for outcome in result.outcomes:
        if outcome.outcome == DUPLICATE and outcome.batch_id is None:
            first = first_seen.get(outcome.transfer_id)
            if first is not None:
                outcome.batch_id = result.outcomes[first.index].batch_id


async def _disputed_refund_targets(store: BatchStore, fresh: Sequence[Prepared]) -> dict[int, int]:
    """Refunds whose original lies in an IN_DISPUTE batch: transfer index -> that batch's id."""
    refunds = [p for p in fresh if p.row.refund_of]
    if not refunds:
        return {}
    originals = await store.existing_transfers([p.row.refund_of for p in refunds if p.row.refund_of])
    candidate_batches = {original.batch_id for original in originals.values()}
    if not candidate_batches:
        return {}
    locked = await store.lock_batches(sorted(candidate_batches), exclusive=True)
    targets: dict[int, int] = {}
    for p in refunds:
        original = originals.get(p.row.refund_of or "")
        if original is None:
            continue
        batch = locked.get(original.batch_id)
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
            name = keys.batch_name(spec.model_name, key.currency, spec.segment, key.window_start,
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
            publish_changes(store.conn, [created], [None], BatchStatus.OPEN, now, actor, "created", None)
        pending = retry
    raise DomainError(errors.INTERNAL, "could not find an open batch after repeated attempts")
