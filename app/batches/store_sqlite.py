"""BatchStore on SQLite: the same effects as PostgreSQL's through executemany and chunked IN lists, made safe by
Tortoise's single SQLite connection, which runs one transaction at a time (so no row locks are needed)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from app.batches.keys import BatchKey
from app.batches.rollup import BUCKET_KEY, BUCKET_SECONDS, BUCKET_UPSERT, BucketMove
from app.batches.store import (
    STORED_COLUMNS,
    AccountDelta,
    BatchStore,
    LockedBatch,
    LockedRows,
    NewTransfer,
    StoredTransfer,
    account_deltas,
    attributes_json,
    stored_transfer,
)
from app.db.dialect import SQLITE, chunks, stored_time


class SqliteBatchStore(BatchStore, dialect=SQLITE):
    BUCKET = f"(CAST(strftime('%s', b.window_start) AS INTEGER) / {BUCKET_SECONDS} * {BUCKET_SECONDS})"

    async def existing_transfers(self, transfer_ids: Sequence[str]) -> dict[str, StoredTransfer]:
        found: dict[str, StoredTransfer] = {}
        for chunk in chunks(list(transfer_ids)):
            marks = ",".join("?" * len(chunk))
            for r in await self.rows(
                f"SELECT transfer_id, {STORED_COLUMNS} FROM transfer WHERE transfer_id IN ({marks})", chunk
            ):
                found[r["transfer_id"]] = stored_transfer(r)
        return found

    async def _latest_batches(self, keys: Sequence[BatchKey]) -> dict[BatchKey, LockedBatch]:
        found: dict[BatchKey, LockedBatch] = {}
        for key in keys:
            rows = await self.rows(
                "SELECT id, status, sequence, owner_matrix_id FROM batch WHERE model_id = ? AND currency = ? "
                "AND segment_key = ? AND window_start = ? ORDER BY sequence DESC LIMIT 1",
                [key.model_id, key.currency, key.segment_key, key.window_start],
            )
            if rows:
                r = rows[0]
                found[key] = LockedBatch(r["id"], r["status"], r["sequence"], r["owner_matrix_id"])
        return found

    async def lock_batches(self, batch_ids: Sequence[int], exclusive: bool = False) -> LockedRows:
        # The SQLite transaction already excludes every other writer and reader.
        found: list[tuple[int, str, int | None]] = []
        for chunk in chunks(sorted(set(batch_ids))):
            marks = ",".join("?" * len(chunk))
            found += await self.tuples(f"SELECT id, status, owner_matrix_id FROM batch WHERE id IN ({marks}) "
                                       "ORDER BY id", chunk)
        return LockedRows.grouped(found)

    async def _insert_transfers(self, rows: Sequence[NewTransfer], now: datetime) -> set[str]:
        # Existing ids were filtered out under the same (exclusive) transaction: every row goes in.
        await self.execute_many(
            "INSERT INTO transfer (transfer_id, payer_id, payee_id, amount, currency, committed_at, model_id, "
            "attributes, refund_of, batch_id, recorded_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [[r.transfer_id, r.payer_id, r.payee_id, r.amount, r.currency, r.committed_at, r.model_id,
              attributes_json(r.attributes), r.refund_of, r.batch_id, now] for r in rows],
        )
        return {r.transfer_id for r in rows}

    async def _add_to_accounts(self, deltas: Sequence[AccountDelta]) -> None:
        await self.execute_many(
            "INSERT INTO batch_account (batch_id, participant_id, currency, debit, credit, transfer_count) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT (batch_id, participant_id) DO UPDATE SET "
            "debit = debit + excluded.debit, credit = credit + excluded.credit, "
            "transfer_count = transfer_count + excluded.transfer_count",
            [[d.batch_id, d.participant_id, d.currency, d.debit, d.credit, d.transfer_count] for d in deltas],
        )

    async def _add_to_bucket_totals(self, deltas: Sequence[AccountDelta], created_batch_ids: Sequence[int]) -> None:
        items = [[d.participant_id, d.debit, d.credit, 0, d.batch_id] for d in deltas]
        items += [["", 0, 0, 1, batch_id] for batch_id in created_batch_ids]
        if items:
            await self.execute_many(
                f"INSERT INTO batch_bucket_total ({BUCKET_KEY}, debit, credit, batch_count, version) "
                f"SELECT b.model_id, b.currency, b.segment_key, {self.BUCKET}, b.status, ?, ?, ?, ?, 1 "
                f"FROM batch b WHERE b.id = ? {BUCKET_UPSERT}",
                items,
            )

    async def _add_participants(self, participant_ids: Sequence[str], now: datetime) -> None:
        await self.execute_many(
            "INSERT INTO participant (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
            [[p, now] for p in sorted(participant_ids)],
        )

    async def _set_status(
        self, batch_ids: Sequence[int], status: str, owner_matrix_id: int | None, now: datetime
    ) -> None:
        for chunk in chunks(list(batch_ids)):
            marks = ",".join("?" * len(chunk))
            await self.execute(
                f"UPDATE batch SET status = ?, owner_matrix_id = ?, updated_at = ? WHERE id IN ({marks})",
                [status, owner_matrix_id, now, *chunk],
            )

    async def release_owned_history(self, matrix_id: int, batch_ids: Sequence[int]) -> None:
        ordered = sorted(batch_ids)
        owned = await self.tuples("SELECT from_status, to_status, at, actor, reason FROM owned_status_change "
                                  "WHERE matrix_id = ? ORDER BY id", [matrix_id])
        for row in owned:
            await self.add_history([(b, row[0], row[1]) for b in ordered], stored_time(row[2]), row[3], row[4],
                                   matrix_id)
        await self.execute("DELETE FROM owned_status_change WHERE matrix_id = ?", [matrix_id])

    async def add_history(
        self,
        changes: Sequence[tuple[int, str | None, str]],
        at: datetime,
        actor: str | None,
        reason: str | None,
        matrix_id: int | None,
    ) -> None:
        if not changes:
            return
        await self.execute_many(
            "INSERT INTO batch_status_change (batch_id, from_status, to_status, at, actor, reason, matrix_id) "
            "VALUES (?,?,?,?,?,?,?)",
            [[b, f, t, at, actor, reason, matrix_id] for b, f, t in changes],
        )

    async def account_sums(self, batch_ids: Sequence[int]) -> list[BucketMove]:
        found: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
        for chunk in chunks(list(batch_ids)):
            marks = ",".join("?" * len(chunk))
            rows = await self.tuples(
                f"SELECT b.model_id, b.currency, b.segment_key, {self.BUCKET}, b.status, a.participant_id, "
                "SUM(a.debit), SUM(a.credit), 0 FROM batch b JOIN batch_account a ON a.batch_id = b.id "
                f"WHERE b.id IN ({marks}) GROUP BY 1, 2, 3, 4, 5, 6 "
                f"UNION ALL SELECT b.model_id, b.currency, b.segment_key, {self.BUCKET}, b.status, '', 0, 0, COUNT(*) "
                f"FROM batch b WHERE b.id IN ({marks}) GROUP BY 1, 2, 3, 4, 5",
                [*chunk, *chunk])
            for r in rows:
                sums = found[(r[0], r[1], r[2], int(r[3]), r[4], r[5])]
                sums[0] += int(r[6])
                sums[1] += int(r[7])
                sums[2] += int(r[8])
        return [BucketMove(*key, *sums) for key, sums in found.items()]

    async def apply_bucket_moves(self, rows: Sequence[tuple[Any, ...]]) -> None:
        await self.execute_many(
            f"INSERT INTO batch_bucket_total ({BUCKET_KEY}, debit, credit, batch_count, version) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1) {BUCKET_UPSERT}",
            rows,
        )

    async def latest_batches_locked(self, keys: Sequence[BatchKey]) -> dict[BatchKey, LockedBatch]:
        return await self._latest_batches(keys)  # the transaction excludes every other writer: no row locks

    async def file_rows(self, rows: Sequence[NewTransfer], now: datetime, created_batch_ids: Sequence[int]) -> set[str]:
        inserted = await self._insert_transfers(rows, now)
        filed = [r for r in rows if r.transfer_id in inserted]
        deltas = account_deltas(filed)
        await self._add_to_accounts(deltas)
        await self._add_participants(sorted({r.payer_id for r in filed} | {r.payee_id for r in filed}), now)
        await self._add_to_bucket_totals(deltas, created_batch_ids)
        return inserted

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
        if not batch_ids:
            return
        await self._set_status(batch_ids, to_status, owner_matrix_id, at)
        if owned:
            await self.add_owned_history(matrix_id, from_statuses[0], to_status, at, actor, reason)
            return
        await self.add_history([(b, f, to_status) for b, f in zip(batch_ids, from_statuses, strict=True)], at,
                               actor, reason, matrix_id)
