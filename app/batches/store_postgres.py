"""BatchStore on PostgreSQL: set-based statements over arrays (unnest, = ANY) and row locks in id order."""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from app.batches.keys import BatchKey
from app.batches.rollup import BUCKET_KEY, BUCKET_UPSERT, PG_BUCKET, BucketMove
from app.batches.store import (
    MODEL_COLUMNS,
    STORED_COLUMNS,
    BatchGroup,
    BatchStore,
    LockedBatch,
    LockedRows,
    NewTransfer,
    StoredTransfer,
    attributes_json,
    stored_transfer,
)
from app.db.dialect import POSTGRES

STORED_JSON = ", ".join(f"'{c}', {c}" for c in STORED_COLUMNS.split(", "))


class PostgresBatchStore(BatchStore, dialect=POSTGRES):
    BUCKET = PG_BUCKET

    async def existing_transfers(self, transfer_ids: Sequence[str]) -> dict[str, StoredTransfer]:
        rows = await self.rows(
            f"SELECT transfer_id, {STORED_COLUMNS} FROM transfer WHERE transfer_id = ANY($1::text[])",
            [list(transfer_ids)],
        )
        return {r["transfer_id"]: stored_transfer(r) for r in rows}

    async def latest_batches_locked(self, keys: Sequence[BatchKey]) -> dict[BatchKey, LockedBatch]:
        # latest_batches and lock_batches in one statement: rows are locked in id order (the locking sits
        # above the sort), as status changes take them, and each row returned is its version once the lock
        # is held (READ COMMITTED re-reads a row it waited for). A newer sequence created meanwhile is
        # found by the caller's retry, as before.
        rows = await self.rows(
            "WITH latest AS (SELECT k.model_id, k.currency, k.segment_key, k.window_start, l.id "
            "  FROM unnest($1::int[], $2::text[], $3::text[], $4::timestamptz[]) "
            "  AS k(model_id, currency, segment_key, window_start) "
            "  CROSS JOIN LATERAL (SELECT id FROM batch "
            "    WHERE batch.model_id = k.model_id AND batch.currency = k.currency "
            "    AND batch.segment_key = k.segment_key AND batch.window_start = k.window_start "
            "    ORDER BY sequence DESC LIMIT 1) AS l) "
            "SELECT latest.model_id, latest.currency, latest.segment_key, latest.window_start, b.id, b.status, "
            "b.sequence, b.owner_matrix_id FROM batch b JOIN latest ON latest.id = b.id "
            "ORDER BY b.id FOR SHARE OF b",
            [[k.model_id for k in keys], [k.currency for k in keys], [k.segment_key for k in keys],
             [k.window_start for k in keys]],
        )
        return {
            BatchKey(r["model_id"], r["currency"], r["segment_key"], r["window_start"]):
                LockedBatch(r["id"], r["status"], r["sequence"], r["owner_matrix_id"])
            for r in rows
        }

    async def models_and_transfers(
        self, transfer_ids: Sequence[str]
    ) -> tuple[list[dict[str, Any]], dict[str, StoredTransfer]]:
        # One round trip: the model rows, then the stored transfers (rows with a transfer_id; `stored` holds
        # their columns as one JSON object, so that the two kinds of row share one shape).
        rows = await self.rows(
            f"SELECT {MODEL_COLUMNS}, NULL::text AS transfer_id, NULL::json AS stored FROM settlement_model "
            "UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, transfer_id, "
            f"json_build_object({STORED_JSON}) FROM transfer WHERE transfer_id = ANY($1::text[])",
            [list(transfer_ids)],
        )
        models = [r for r in rows if r["transfer_id"] is None]
        existing = {r["transfer_id"]: stored_transfer(json.loads(r["stored"])) for r in rows
                    if r["transfer_id"] is not None}
        return models, existing

    async def file_rows(self, rows: Sequence[NewTransfer], now: datetime, created_batch_ids: Sequence[int]) -> set[str]:
        # One statement: the transfers, then from the rows actually inserted (a concurrent call may have
        # recorded some ids first) the account sums, the participants and the hourly rollup, each in key order.
        # The legs (two a transfer) are summed per (batch, participant) once, in `sums`: the participants and the
        # rollup are derived from those few rows, not from every leg (sorting 2,000 legs by the rollup's text key
        # was a sixth of the statement).
        if not rows:
            await self._count_new_batches(created_batch_ids)
            return set()
        ordered = sorted(rows, key=lambda r: r.transfer_id)
        # The inserted ids come back as one array in one row, not a row each (1,000 records decoded into dicts).
        inserted = await self.tuples(
            "WITH ins AS (INSERT INTO transfer (transfer_id, payer_id, payee_id, amount, currency, "
            "committed_at, model_id, attributes, refund_of, batch_id, recorded_at) "
            "SELECT t.transfer_id, t.payer_id, t.payee_id, t.amount, t.currency, t.committed_at, "
            "t.model_id, t.attributes::jsonb, t.refund_of, t.batch_id, $11::timestamptz "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[], "
            "$7::int[], $8::text[], $9::text[], $10::bigint[]) "
            "AS t(transfer_id, payer_id, payee_id, amount, currency, committed_at, model_id, attributes, "
            "refund_of, batch_id) "
            "ON CONFLICT (transfer_id) DO NOTHING "
            "RETURNING transfer_id, batch_id, payer_id, payee_id, amount, currency), "
            "legs AS (SELECT batch_id, payer_id AS participant_id, currency, amount AS debit, 0::bigint AS credit "
            "  FROM ins UNION ALL SELECT batch_id, payee_id, currency, 0::bigint, amount FROM ins), "
            "sums AS (SELECT batch_id, participant_id, min(currency) AS currency, sum(debit)::bigint AS debit, "
            "  sum(credit)::bigint AS credit, count(*)::int AS transfer_count FROM legs "
            "  GROUP BY batch_id, participant_id), "
            "accounts AS (INSERT INTO batch_account (batch_id, participant_id, currency, debit, credit, "
            "  transfer_count) "
            "  SELECT batch_id, participant_id, currency, debit, credit, transfer_count FROM sums "
            "  ORDER BY batch_id, participant_id "
            "  ON CONFLICT (batch_id, participant_id) DO UPDATE SET "
            "  debit = batch_account.debit + EXCLUDED.debit, credit = batch_account.credit + EXCLUDED.credit, "
            "  transfer_count = batch_account.transfer_count + EXCLUDED.transfer_count), "
            "participants AS (INSERT INTO participant (id, created_at) "
            "  SELECT DISTINCT participant_id, $11::timestamptz FROM sums ORDER BY 1 ON CONFLICT (id) DO NOTHING), "
            f"buckets AS (INSERT INTO batch_bucket_total ({BUCKET_KEY}, debit, credit, batch_count, version) "
            f"  SELECT b.model_id, b.currency, b.segment_key, {self.BUCKET}, b.status, d.participant_id, "
            "  sum(d.debit)::bigint, sum(d.credit)::bigint, sum(d.n)::int, 1 "
            "  FROM (SELECT batch_id, participant_id, debit, credit, 0 AS n FROM sums UNION ALL "
            "        SELECT c, '', 0, 0, 1 FROM unnest($12::bigint[]) AS c) AS d JOIN batch b ON b.id = d.batch_id "
            f"  GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6 {BUCKET_UPSERT}) "
            "SELECT array_agg(transfer_id) FROM ins",
            [
                [r.transfer_id for r in ordered], [r.payer_id for r in ordered],
                [r.payee_id for r in ordered], [r.amount for r in ordered], [r.currency for r in ordered],
                [r.committed_at for r in ordered], [r.model_id for r in ordered],
                [attributes_json(r.attributes) for r in ordered], [r.refund_of for r in ordered],
                [r.batch_id for r in ordered], now, list(created_batch_ids),
            ],
        )
        return set(inserted[0][0] or ())

    async def lock_batches(self, batch_ids: Sequence[int], exclusive: bool = False) -> LockedRows:
        # The locked rows come back grouped by status and owner, each group's ids as one array: a matrix locking
        # 86,400 batches decodes one or a few arrays, not 86,400 records, and decides per group.
        mode = "UPDATE" if exclusive else "SHARE"
        rows = await self.tuples(
            "SELECT status, owner_matrix_id, array_agg(id ORDER BY id) FROM (SELECT id, status, owner_matrix_id "
            f"FROM batch WHERE id = ANY($1::bigint[]) ORDER BY id FOR {mode}) AS locked GROUP BY 1, 2",
            [sorted(set(batch_ids))],
        )
        return LockedRows([BatchGroup(r[0], r[1], list(r[2])) for r in rows])

    async def _count_new_batches(self, created_batch_ids: Sequence[int]) -> None:
        """The batches a call opened, counted in the hourly rollup (file_rows does it with the transfers)."""
        if created_batch_ids:
            await self.execute(
                f"INSERT INTO batch_bucket_total ({BUCKET_KEY}, debit, credit, batch_count, version) "
                f"SELECT b.model_id, b.currency, b.segment_key, {self.BUCKET}, b.status, '', 0, 0, count(*)::int, 1 "
                f"FROM batch b WHERE b.id = ANY($1::bigint[]) GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5 "
                f"{BUCKET_UPSERT}",
                [list(created_batch_ids)],
            )

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
        # The update, only from the status the caller saw, then the history rows of what it updated. Every batch
        # must move, else nothing does.
        if not batch_ids:
            return
        ids, first = list(batch_ids), from_statuses[0]
        if first is not None and all(status == first for status in from_statuses):
            # One source status (a matrix moving 86,400 batches): sent once rather than as an array of 86,400, and
            # two plain statements (~100 ms less for 86,400 than one statement joining the update to the insert).
            moved = await self.execute(
                "UPDATE batch SET status = $3, owner_matrix_id = $4, updated_at = $5 "
                "WHERE id = ANY($1::bigint[]) AND status = $2", [ids, first, to_status, owner_matrix_id, at])
            history = "SELECT b, $2::text, $3, $4, $5, $6, $7 FROM unnest($1::bigint[]) AS b"
            sources: Any = first
        else:
            rows = await self.tuples(
                "WITH upd AS (UPDATE batch SET status = $3, owner_matrix_id = $4, updated_at = $5 "
                "  FROM unnest($1::bigint[], $2::text[]) AS c(b, f) WHERE batch.id = c.b AND batch.status = c.f "
                "  RETURNING 1) SELECT count(*) FROM upd",
                [ids, list(from_statuses), to_status, owner_matrix_id, at])
            moved = int(rows[0][0])
            history = "SELECT b, f, $3, $4, $5, $6, $7 FROM unnest($1::bigint[], $2::text[]) AS c(b, f)"
            sources = list(from_statuses)
        if moved != len(ids):
            raise RuntimeError(f"{len(ids) - moved} of {len(ids)} batch(es) were not in the status they were read "
                               f"in; nothing was changed")
        if owned:
            await self.add_owned_history(matrix_id, first, to_status, at, actor, reason)
            return
        await self.execute(
            "INSERT INTO batch_status_change (batch_id, from_status, to_status, at, actor, reason, matrix_id) "
            f"{history}",
            [ids, sources, to_status, at, actor, reason, matrix_id])

    async def release_owned_history(self, matrix_id: int, batch_ids: Sequence[int]) -> None:
        await self.execute(
            "INSERT INTO batch_status_change (batch_id, from_status, to_status, at, actor, reason, matrix_id) "
            "SELECT b, o.from_status, o.to_status, o.at, o.actor, o.reason, o.matrix_id "
            "FROM owned_status_change o CROSS JOIN unnest($2::bigint[]) AS b WHERE o.matrix_id = $1 ORDER BY o.id, b",
            [matrix_id, sorted(batch_ids)])
        await self.execute("DELETE FROM owned_status_change WHERE matrix_id = $1", [matrix_id])

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
        await self.execute(
            "INSERT INTO batch_status_change (batch_id, from_status, to_status, at, actor, reason, matrix_id) "
            "SELECT b, f, t, $4, $5, $6, $7 FROM unnest($1::bigint[], $2::text[], $3::text[]) AS c(b, f, t)",
            [[c[0] for c in changes], [c[1] for c in changes], [c[2] for c in changes], at, actor, reason,
             matrix_id],
        )

    async def bucket_sums(self, batch_ids: Sequence[int],
                          counted: Mapping[tuple[Any, ...], int] | None = None) -> list[BucketMove]:
        # Where all the batches of a rollup row move (a matrix settling whole hours), the row itself is their
        # sum: it is read (locked) instead of the batches' accounts, so settling a day of one-second batches
        # reads a few hundred rows, not 864,000. `counted`: the moving batches per rollup row, when the caller
        # knows them (read with the batches' locks), else counted here.
        if counted is None:
            found = await self.tuples(
                f"SELECT b.model_id, b.currency, b.segment_key, {self.BUCKET}, b.status, COUNT(*) FROM batch b "
                "WHERE b.id = ANY($1::bigint[]) GROUP BY 1, 2, 3, 4, 5", [list(batch_ids)])
            counted = {(r[0], r[1], r[2], int(r[3]), r[4]): int(r[5]) for r in found}
        moving = dict(counted)
        if not moving:
            return []
        keys = sorted(moving)
        rolled = await self.tuples(
            "SELECT t.model_id, t.currency, t.segment_key, t.bucket, t.status, t.participant_id, t.debit, t.credit, "
            "t.batch_count FROM batch_bucket_total t JOIN unnest($1::int[], $2::text[], $3::text[], $4::bigint[], "
            "$5::text[]) AS k(model_id, currency, segment_key, bucket, status) ON t.model_id = k.model_id "
            "AND t.currency = k.currency AND t.segment_key = k.segment_key AND t.bucket = k.bucket "
            "AND t.status = k.status ORDER BY 1, 2, 3, 4, 5, 6 FOR UPDATE OF t",
            [list(column) for column in zip(*keys, strict=True)])
        rows: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
        for r in rolled:
            rows[(r[0], r[1], r[2], int(r[3]), r[4])].append(r)
        whole = {key for key, count in moving.items()
                 if any(r[5] == "" and int(r[8]) == count for r in rows.get(key, []))}
        moves = [BucketMove(r[0], r[1], r[2], int(r[3]), r[4], r[5], int(r[6]), int(r[7]), int(r[8]))
                 for key in whole for r in rows[key]]
        if len(whole) < len(moving):  # some rows keep batches that stay: sum the moving batches' accounts
            partial = await self.tuples(
                f"SELECT b.id FROM batch b WHERE b.id = ANY($1::bigint[]) AND ({self.BUCKET}, b.model_id, b.currency, "
                "b.segment_key, b.status) NOT IN (SELECT * FROM unnest($2::bigint[], $3::int[], $4::text[], "
                "$5::text[], $6::text[]))",
                [list(batch_ids), [k[3] for k in whole], [k[0] for k in whole], [k[1] for k in whole],
                 [k[2] for k in whole], [k[4] for k in whole]])
            moves += await self.account_sums([int(r[0]) for r in partial])
        return moves

    async def account_sums(self, batch_ids: Sequence[int]) -> list[BucketMove]:
        rows = await self.tuples(
            f"SELECT b.model_id, b.currency, b.segment_key, {self.BUCKET}, b.status, a.participant_id, "
            "SUM(a.debit), SUM(a.credit), 0 FROM batch b JOIN batch_account a ON a.batch_id = b.id "
            "WHERE b.id = ANY($1::bigint[]) GROUP BY 1, 2, 3, 4, 5, 6 "
            f"UNION ALL SELECT b.model_id, b.currency, b.segment_key, {self.BUCKET}, b.status, '', 0, 0, COUNT(*) "
            "FROM batch b WHERE b.id = ANY($1::bigint[]) GROUP BY 1, 2, 3, 4, 5",
            [list(batch_ids)])
        return [BucketMove(r[0], r[1], r[2], int(r[3]), r[4], r[5], int(r[6]), int(r[7]), int(r[8])) for r in rows]

    async def apply_bucket_moves(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        await self.execute(
            f"INSERT INTO batch_bucket_total ({BUCKET_KEY}, debit, credit, batch_count, version) "
            "SELECT *, 1 FROM unnest($1::int[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], "
            f"$7::bigint[], $8::bigint[], $9::int[]) {BUCKET_UPSERT}",
            [list(column) for column in zip(*rows, strict=True)],
        )
