"""Applying batch status transitions (SPEC §5) to stored batches, and the single-batch commands.

The table of what may move where is app/batches/status.py; this is the one function that applies it, under row
locks, with the batches' history and the hourly rollup moving in the same transaction.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tortoise import connections

from app import audit
from app.auth import Principal
from app.batches.lookups import BatchRef, resolve_ref
from app.batches.rollup import move_rows
from app.batches.status import NO_SUCH_BATCH, TRANSITIONS, Action, Skipped, StatusChange, owner_after, refusal
from app.batches.store import BatchGroup, BatchStore, LockedRows
from app.core import clock, errors
from app.core.checks import check_reason
from app.core.errors import DomainError
from app.core.turns import slices
from app.db import outbox


async def apply(
    store: BatchStore,
    batch_ids: Sequence[int],
    action: Action,
    *,
    actor: str | None,
    reason: str | None,
    now: datetime,
    matrix_id: int | None = None,
    move_totals: bool = True,
    locked: LockedRows | None = None,
    owned: bool = False,
) -> tuple[list[StatusChange], list[Skipped]]:
    """Apply `action` to every batch that allows it, under row locks, inside the caller's transaction.

    Batches that do not allow it are returned as skipped with the reason; nothing is skipped silently.
    `locked`: the rows as they are, held by the caller: locked FOR UPDATE in this transaction (a matrix
    locks all its batches first), or batches only the caller's locked matrix may move (its own
    AWAITING_SETTLEMENT ones), whose row locks the update takes; without it the batches are locked here.
    `move_totals=False`: the caller moves the rollup itself (settlement reuses the sums for its report).
    `owned=True`: a matrix-wide lock or settle, where the batches that move are every batch the matrix owns once
    they moved (an OPEN matrix owns none); their history is one row for all of them (models.settlement.
    OwnedStatusChange) when they all move from one status. A matrix giving its batches up (unlock: they are all it
    owns) first turns those rows into each batch's own.
    """
    rule = TRANSITIONS[action]
    if locked is None:
        locked = await store.lock_batches(batch_ids, exclusive=True)
    wanted = set(batch_ids)
    skipped: list[Skipped] = []
    found = 0
    groups: list[BatchGroup] = []  # the ones that move
    for group in locked.groups:  # decided per group of one status and owner: a day's 86,400 batches are one or two
        ids = group.ids if len(group.ids) <= len(wanted) and wanted.issuperset(group.ids) else \
            [i for i in group.ids if i in wanted]
        found += len(ids)
        why = refusal(action, group.status, group.owner_matrix_id, matrix_id)
        if why:
            skipped += await skips(ids, why)
        elif ids:
            groups.append(BatchGroup(group.status, group.owner_matrix_id, ids, group.bucket))
    if found < len(wanted):
        skipped += [Skipped(i, NO_SUCH_BATCH) for i in sorted(wanted) if i not in locked]
    if len(skipped) > 1:
        skipped.sort(key=lambda s: s.batch_id)
    moving: list[int] = []
    sources: list[str] = []
    for group in groups:  # list operations, not a Python step per batch
        moving += group.ids
        sources += [group.status] * len(group.ids)
    changes: list[StatusChange] = []
    async for part in slices(len(moving)):  # 86,400 events to build: other requests run meanwhile
        changes += [StatusChange(moving[k], sources[k], rule.target, now, actor, reason, matrix_id) for k in part]
    if changes:
        # The hourly rollup follows the batches from their old status to the new one.
        moves = await store.bucket_sums(moving, LockedRows(groups).rollup_counts()) if move_totals else []
        owner = owner_after(action, matrix_id)
        if rule.owner_only and owner is None and matrix_id is not None:
            await store.release_owned_history(matrix_id, moving)
        await store.change_status(moving, sources, rule.target, owner, now, actor, reason, matrix_id,
                                  owned=owned and matrix_id is not None and len({g.status for g in groups}) == 1)
        await store.apply_bucket_moves(move_rows(moves, rule.target))
        publish_changes(store.conn, moving, sources, rule.target, now, actor, reason, matrix_id)
    return changes, skipped


async def skips(batch_ids: Sequence[int], reason: str) -> list[Skipped]:
    """These batches, each skipped for `reason` (86,400 of them when a matrix finds its day locked by another)."""
    found: list[Skipped] = []
    async for part in slices(len(batch_ids)):
        found += [Skipped(batch_ids[k], reason) for k in part]
    return found


async def histories(batch_ids: Sequence[int]) -> dict[int, list[StatusChange]]:
    """Each batch's history (SPEC §5), oldest first, as committed."""
    return await BatchStore.on(connections.get("default")).histories(batch_ids)


def publish_changes(conn: Any, batch_ids: Sequence[int], sources: Sequence[str | None], to_status: str,
                    at: datetime, actor: str | None, reason: str | None, matrix_id: int | None) -> None:
    """Stage status changes (batch_ids[k] from sources[k] to `to_status`) for the outbox (SPEC §13) in the
    transaction of `conn` that makes them: one change set per from / to / at / actor / reason / matrix, listing its
    batch ids (a settled day is one row, not 86,400). Every status change is made in `apply` or when recording opens
    a batch; both call this."""
    sets = outbox.staged(conn)
    by_source: dict[str | None, outbox.ChangeSet] = {}
    if sets and sets[-1].kind == "batch" and sets[-1].key[1:] == (to_status, at, actor, reason, matrix_id):
        by_source[sets[-1].key[0]] = sets[-1]
    start = 0
    while start < len(batch_ids):  # runs of one source status: a list extended per run, not per batch
        source, end = sources[start], start + 1
        while end < len(batch_ids) and sources[end] == source:
            end += 1
        found = by_source.get(source)
        if found is None:
            key = (source, to_status, at, actor, reason, matrix_id)
            found = by_source[source] = outbox.ChangeSet("batch", key, {
                "from": source, "to": to_status, "at": at.isoformat(), "actor": actor, "reason": reason,
                "matrixId": matrix_id})
            sets.append(found)
        found.ids.extend(batch_ids[start:end])
        start = end


async def apply_one(store: BatchStore, batch_id: int, action: Action, *, actor: str | None, reason: str | None,
                    now: datetime, matrix_id: int | None = None) -> StatusChange:
    changes, skipped = await apply(store, [batch_id], action, actor=actor, reason=reason, now=now,
                                   matrix_id=matrix_id)
    if skipped:
        code = errors.NOT_FOUND if skipped[0].reason == NO_SUCH_BATCH else errors.INVALID_TRANSITION
        raise DomainError(code, skipped[0].reason, ["ref"])
    return changes[0]


# The single-batch commands of the API, by the operation name the audit log gives them.
OPERATIONS = {Action.CLOSE: "closeBatch", Action.DISPUTE: "disputeBatch", Action.RESOLVE: "resolveBatchDispute"}


async def change_status(ref: BatchRef, action: Action, caller: Principal | None, reason: str | None = None
                        ) -> tuple[int, StatusChange]:
    """Close, dispute or resolve the dispute of one batch (by id, name or transfer id), audited."""
    command = audit.Command(caller, OPERATIONS[action], ref.given)

    async def work(conn: Any) -> tuple[int, StatusChange]:
        check_reason(reason)
        batch_id = await resolve_ref(ref)
        change = await apply_one(BatchStore.on(conn), batch_id, action, actor=command.actor, reason=reason,
                                 now=clock.now())
        return batch_id, change

    return await audit.run(command, work)
