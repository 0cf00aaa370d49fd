"""The hand-written SQL of batches (SPEC §4, §5): filing transfers into batches, moving batch statuses, and the
hourly rollup that follows both (app/batches/rollup.py). One interface here, one implementation per dialect
(store_postgres.py: set-based statements over arrays and row locks; store_sqlite.py: the same effects through
executemany, made safe by Tortoise's single SQLite connection, which runs one transaction at a time).

Concurrency rule (SPEC §4): a transfer is only filed into a batch that is OPEN at commit time. The recorder holds
FOR SHARE on the batch rows it files into; a status change takes the row exclusively, so it waits for recorders
in flight, and recorders after it see the new status and open the next sequence.
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.batches.keys import BatchKey
from app.batches.rollup import BUCKET_KEY, BucketMove
from app.batches.status import StatusChange
from app.db.dialect import Store, chunks, stored_time


# NewBatch and NewTransfer are built for every transfer of a call: plain (not frozen) dataclasses, as a
# frozen one's __init__ costs five times as much; NewTransfer.batch_id is set once the batch is known.
@dataclass(slots=True)
class NewBatch:
    key: BatchKey
    segment: list[tuple[str, str]]
    window_end: datetime
    model_name: str
    interval_seconds: int


@dataclass(slots=True)
class NewTransfer:
    transfer_id: str
    payer_id: str
    payee_id: str
    amount: int
    currency: str
    committed_at: datetime
    model_id: int
    attributes: list[tuple[str, str]]
    refund_of: str | None
    batch_id: int

    def content(self) -> TransferContent:
        return (self.payer_id, self.payee_id, self.amount, self.currency, self.committed_at, self.model_id,
                tuple(sorted(self.attributes)), self.refund_of)


# What decides whether a transfer id sent again is a DUPLICATE (same content) or a TRANSFER_CONFLICT: its content,
# compared field by field with the stored row. No digest of it is stored: a sha256 in hex cost 65 bytes a transfer,
# a sixth of its storage, to save reading a few columns of the (rare) ids that were sent before.
TransferContent = tuple[str, str, int, str, datetime, int, tuple[tuple[str, str], ...], str | None]
# The columns of a stored transfer's content, in TransferContent's order, then its batch.
STORED_COLUMNS = "payer_id, payee_id, amount, currency, committed_at, model_id, attributes, refund_of, batch_id"


@dataclass(frozen=True, slots=True)
class StoredTransfer:
    content: TransferContent
    batch_id: int


def stored_transfer(row: dict[str, Any]) -> StoredTransfer:
    """A transfer row (STORED_COLUMNS) as read by either dialect: attributes are JSON text, and SQLite gives the
    time as ISO text."""
    attributes = row["attributes"]
    if isinstance(attributes, str):
        attributes = json.loads(attributes)
    pairs = tuple(sorted((a["key"], a["value"]) for a in attributes or ()))
    return StoredTransfer((row["payer_id"], row["payee_id"], int(row["amount"]), row["currency"],
                           stored_time(row["committed_at"]),
                           int(row["model_id"]), pairs, row["refund_of"]), int(row["batch_id"]))


@dataclass(frozen=True, slots=True)
class AccountDelta:
    batch_id: int
    participant_id: str
    currency: str
    debit: int
    credit: int
    transfer_count: int


@dataclass(slots=True)  # not frozen: a matrix locks 86,400 of them at once
class LockedBatch:
    id: int
    status: str
    sequence: int
    owner_matrix_id: int | None


@dataclass(slots=True)
class BatchGroup:
    """Batches that share one status and one owner (and, when `bucket` is known, one hourly rollup row: model,
    currency, segment key, bucket); ids ascending."""

    status: str
    owner_matrix_id: int | None
    ids: list[int]
    bucket: tuple[int, str, str, int] | None = None


class LockedRows(Mapping[int, LockedBatch]):
    """Locked batches as the groups of one status and owner they fall into. A matrix-wide command decides per group
    (a day's 86,400 batches are one or a few groups), not per batch; a single batch is still readable by id."""

    def __init__(self, groups: Sequence[BatchGroup]) -> None:
        self.groups = [g for g in groups if g.ids]
        self._index: dict[int, BatchGroup] | None = None

    @classmethod
    def grouped(cls, rows: Iterable[tuple[int, str, int | None]]) -> LockedRows:
        """From (id, status, owner) rows in ascending id order."""
        groups: dict[tuple[str, int | None], BatchGroup] = {}
        for batch_id, status, owner in rows:
            group = groups.get((status, owner))
            if group is None:
                group = groups[(status, owner)] = BatchGroup(status, owner, [])
            group.ids.append(batch_id)
        return cls(list(groups.values()))

    @property
    def index(self) -> dict[int, BatchGroup]:
        if self._index is None:
            self._index = {}
            for group in self.groups:
                self._index.update(dict.fromkeys(group.ids, group))
        return self._index

    def __getitem__(self, batch_id: int) -> LockedBatch:
        group = self.index[batch_id]
        return LockedBatch(batch_id, group.status, 0, group.owner_matrix_id)  # a transition reads no sequence

    def __contains__(self, batch_id: object) -> bool:
        return batch_id in self.index

    def __iter__(self) -> Iterator[int]:
        return (batch_id for group in self.groups for batch_id in group.ids)

    def __len__(self) -> int:
        return sum(len(group.ids) for group in self.groups)

    def ids_in(self, status: str) -> list[int]:
        return sorted(batch_id for group in self.groups if group.status == status for batch_id in group.ids)

    def rollup_counts(self) -> dict[tuple[Any, ...], int] | None:
        """How many of these batches each hourly rollup row (model, currency, segment, bucket, status) holds; None
        when a group does not know its row."""
        counts: dict[tuple[Any, ...], int] = {}
        for group in self.groups:
            if group.bucket is None:
                return None
            key = (*group.bucket, group.status)
            counts[key] = counts.get(key, 0) + len(group.ids)
        return counts

    def moved(self, batch_ids: Sequence[int], status: str) -> LockedRows:
        """These rows as they are once `batch_ids` moved to `status` (their owner kept) in this transaction."""
        moving = set(batch_ids)
        if not moving:
            return self
        kept = [BatchGroup(g.status, g.owner_matrix_id, [i for i in g.ids if i not in moving], g.bucket)
                for g in self.groups]
        arrived: dict[tuple[int | None, tuple[int, str, str, int] | None], list[int]] = {}
        for group in self.groups:
            arrived.setdefault((group.owner_matrix_id, group.bucket), []).extend(i for i in group.ids if i in moving)
        merged = {(g.status, g.owner_matrix_id, g.bucket): g for g in kept if g.ids}
        for (owner, bucket), ids in arrived.items():
            if ids:
                group = merged.setdefault((status, owner, bucket), BatchGroup(status, owner, [], bucket))
                group.ids = sorted(group.ids + ids)
        return LockedRows(list(merged.values()))


MODEL_COLUMNS = "id, name, batch_interval_seconds, currencies, segment_by, is_active, is_default"
MODELS_SQL = f"SELECT {MODEL_COLUMNS} FROM settlement_model"


def account_deltas(rows: Sequence[NewTransfer]) -> list[AccountDelta]:
    """What filing `rows` adds to batch accounts: a debit for each payer, a credit for each payee."""
    sums: dict[tuple[int, str], list[Any]] = defaultdict(lambda: [None, 0, 0, 0])
    for r in rows:
        payer = sums[(r.batch_id, r.payer_id)]
        payer[0], payer[1], payer[3] = r.currency, payer[1] + r.amount, payer[3] + 1
        payee = sums[(r.batch_id, r.payee_id)]
        payee[0], payee[2], payee[3] = r.currency, payee[2] + r.amount, payee[3] + 1
    return [AccountDelta(batch_id, participant, v[0], v[1], v[2], v[3])
            for (batch_id, participant), v in sums.items()]


def attributes_json(attributes: Sequence[tuple[str, str]]) -> str:
    if not attributes:
        return "[]"
    return json.dumps([{"key": k, "value": v} for k, v in attributes], separators=(",", ":"))


class BatchStore(Store):
    """The operations on batches, in the transaction of `conn`."""

    # SQL for the epoch second of the hour a batch window starts in (the rollup's bucket), per dialect.
    BUCKET: str = ""

    # -- implemented per dialect -------------------------------------------------------------
    async def existing_transfers(self, transfer_ids: Sequence[str]) -> dict[str, StoredTransfer]:
        """The stored content and batch of these transfer ids."""
        raise NotImplementedError

    async def latest_batches_locked(self, keys: Sequence[BatchKey]) -> dict[BatchKey, LockedBatch]:
        """The highest sequence of each key, locked FOR SHARE, as it is once the lock is held."""
        raise NotImplementedError

    async def lock_batches(self, batch_ids: Sequence[int], exclusive: bool = False) -> LockedRows:
        """Lock the batches (FOR UPDATE when `exclusive`, else FOR SHARE) in id order; the ones that exist."""
        raise NotImplementedError

    async def file_rows(self, rows: Sequence[NewTransfer], now: datetime, created_batch_ids: Sequence[int]) -> set[str]:
        """Insert the rows (ids already stored are skipped), add the inserted ones to their batch accounts,
        to the participants and to the hourly rollup (with the batches this call created); returns the
        inserted ids."""
        raise NotImplementedError

    async def change_status(
        self,
        batch_ids: Sequence[int],
        from_statuses: Sequence[str | None],
        to_status: str,
        owner_matrix_id: int | None,
        at: datetime,
        actor: str | None,
        reason: str | None,
        matrix_id: int | None,
        owned: bool = False,
    ) -> None:
        """Move the (locked) batches from their status (as read, same order) to `to_status` and write one
        history row each; `owned`: they are every batch matrix `matrix_id` owns once moved, all from one status (a
        matrix-wide lock or settle), and their history is one row for all of them (models.settlement.
        OwnedStatusChange)."""
        raise NotImplementedError

    async def release_owned_history(self, matrix_id: int, batch_ids: Sequence[int]) -> None:
        """Matrix `matrix_id` gives up these batches, all it owns: its owned history rows become each batch's own."""
        raise NotImplementedError

    async def add_history(
        self,
        changes: Sequence[tuple[int, str | None, str]],
        at: datetime,
        actor: str | None,
        reason: str | None,
        matrix_id: int | None,
    ) -> None:
        raise NotImplementedError

    async def account_sums(self, batch_ids: Sequence[int]) -> list[BucketMove]:
        """The rollup contributions of these batches under their current status, from their accounts."""
        raise NotImplementedError

    async def apply_bucket_moves(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Upsert rollup deltas (app/batches/rollup.move_rows), in the order given."""
        raise NotImplementedError

    # -- shared, a dialect may do them in fewer statements ---------------------------------------
    async def add_owned_history(self, matrix_id: int | None, from_status: str | None, to_status: str, at: datetime,
                                actor: str | None, reason: str | None) -> None:
        """The history row of a matrix-wide change of all the batches the matrix owns (change_status's `owned`)."""
        assert matrix_id is not None and from_status is not None, "an owned change has a matrix and one source"
        q = self.sql()
        await self.execute(
            "INSERT INTO owned_status_change (matrix_id, from_status, to_status, at, actor, reason) "
            f"VALUES ({q.in_list([matrix_id, from_status, to_status, at, actor, reason])})", q.values)

    async def histories(self, batch_ids: Sequence[int]) -> dict[int, list[StatusChange]]:
        """Each batch's history (SPEC §5), oldest first: the view batch_history (migration 0011)."""
        found: dict[int, list[StatusChange]] = defaultdict(list)
        for chunk in chunks(sorted(set(batch_ids))):
            q = self.sql()
            for r in await self.tuples(
                "SELECT batch_id, from_status, to_status, at, actor, reason, matrix_id FROM batch_history "
                f"WHERE batch_id IN ({q.in_list(chunk)}) ORDER BY batch_id, part, seq", q.values):
                found[int(r[0])].append(StatusChange(int(r[0]), r[1], r[2], stored_time(r[3]), r[4], r[5],
                                                     None if r[6] is None else int(r[6])))
        return found

    async def models_and_transfers(
        self, transfer_ids: Sequence[str]
    ) -> tuple[list[dict[str, Any]], dict[str, StoredTransfer]]:
        """The settlement_model rows, and the stored content and batch of these transfer ids."""
        return await self.rows(MODELS_SQL), await self.existing_transfers(transfer_ids)

    async def bucket_sums(self, batch_ids: Sequence[int],
                          counted: Mapping[tuple[Any, ...], int] | None = None) -> list[BucketMove]:
        """The rollup contributions of these batches under their current status, per rollup row. Call it holding
        the batches' row locks. `counted`: how many of them each rollup row (model, currency, segment, bucket,
        status) holds, when the caller read it with them (the groups of LockedRows, when they know their rollup row)."""
        return await self.account_sums(batch_ids)

    async def create_batch(self, batch: NewBatch, sequence: int, name: str, now: datetime) -> int | None:
        """Insert the next sequence of a key; None when a concurrent recorder created it first."""
        key = batch.key
        segment = json.dumps([{"key": k, "value": v} for k, v in batch.segment], separators=(",", ":"))
        q = self.sql()
        rows = await self.rows(
            "INSERT INTO batch (model_id, currency, segment, segment_key, window_start, window_end, "
            "sequence, name, status, created_at, updated_at) "
            f"VALUES ({q.p(key.model_id)}, {q.p(key.currency)}, {q.json(segment)}, {q.p(key.segment_key)}, "
            f"{q.p(key.window_start)}, {q.p(batch.window_end)}, {q.p(sequence)}, {q.p(name)}, {q.p('OPEN')}, "
            f"{q.p(now)}, {q.p(now)}) ON CONFLICT DO NOTHING RETURNING id",
            q.values,
        )
        return int(rows[0]["id"]) if rows else None

    async def rebuild_bucket_totals(self) -> None:
        """Recompute the whole rollup from the batches (bulk loads and benchmarks; never needed in operation)."""
        await self.execute("DELETE FROM batch_bucket_total")
        await self.execute(
            f"INSERT INTO batch_bucket_total ({BUCKET_KEY}, debit, credit, batch_count, version) "
            f"SELECT b.model_id, b.currency, b.segment_key, {self.BUCKET}, b.status, a.participant_id, SUM(a.debit), "
            "SUM(a.credit), 0, 1 FROM batch b JOIN batch_account a ON a.batch_id = b.id GROUP BY 1, 2, 3, 4, 5, 6 "
            f"UNION ALL SELECT b.model_id, b.currency, b.segment_key, {self.BUCKET}, b.status, '', 0, 0, COUNT(*), 1 "
            "FROM batch b GROUP BY 1, 2, 3, 4, 5"
        )

