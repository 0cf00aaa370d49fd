"""Hand-written SQL of the hot paths: filing transfers into batches and moving batch statuses.

One module owns it, with one implementation per dialect behind the same methods. PostgreSQL gets
set-based statements over arrays (unnest) and row locks; SQLite gets the same effects through
executemany, made safe by Tortoise's single SQLite connection, which runs one transaction at a time.

Concurrency rule (SPEC §4): a transfer is only filed into a batch that is OPEN at commit time. The
recorder holds FOR SHARE on the batch rows it files into; a status change takes the row exclusively, so
it waits for recorders in flight and recorders after it see the new status and open the next sequence.
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.batching import BatchKey
from app.matrix_totals import BUCKET_KEY, BUCKET_UPSERT, bucket_of

SQLITE_CHUNK = 500


# NewBatch and TransferRow are built for every transfer of a call: plain (not frozen) dataclasses, as a
# frozen one's __init__ costs five times as much; TransferRow.batch_id is set once the batch is known.
@dataclass(slots=True)
class NewBatch:
    key: BatchKey
    segment: list[tuple[str, str]]
    window_end: datetime
    model_name: str
    interval_seconds: int


@dataclass(slots=True)
class TransferRow:
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
    fingerprint: str


@dataclass(frozen=True, slots=True)
class AccountDelta:
    batch_id: int
    participant_id: str
    currency: str
    debit: int
    credit: int
    transfer_count: int


@dataclass(slots=True)  # not frozen: a matrix locks 86,400 of them at once
class BatchRow:
    id: int
    status: str
    sequence: int
    owner_matrix_id: int | None


def _chunks(items: Sequence[Any], size: int = SQLITE_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


MODEL_COLUMNS = "id, name, batch_interval_seconds, currencies, segment_by, is_active, is_default"
MODELS_SQL = f"SELECT {MODEL_COLUMNS} FROM settlement_model"


def account_deltas(rows: Sequence[TransferRow]) -> list[AccountDelta]:
    """What filing `rows` adds to batch accounts: a debit for each payer, a credit for each payee."""
    sums: dict[tuple[int, str], list[Any]] = defaultdict(lambda: [None, 0, 0, 0])
    for r in rows:
        payer = sums[(r.batch_id, r.payer_id)]
        payer[0], payer[1], payer[3] = r.currency, payer[1] + r.amount, payer[3] + 1
        payee = sums[(r.batch_id, r.payee_id)]
        payee[0], payee[2], payee[3] = r.currency, payee[2] + r.amount, payee[3] + 1
    return [AccountDelta(batch_id, participant, v[0], v[1], v[2], v[3])
            for (batch_id, participant), v in sums.items()]


def _attributes_json(attributes: Sequence[tuple[str, str]]) -> str:
    if not attributes:
        return "[]"
    return json.dumps([{"key": k, "value": v} for k, v in attributes], separators=(",", ":"))


class BatchStore:
    """The operations; `conn` is the Tortoise transaction connection they run in."""

    dialect = "abstract"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def rows(self, sql: str, values: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return list(await self.conn.execute_query_dict(sql, list(values)))

    async def execute(self, sql: str, values: Sequence[Any] = ()) -> None:
        await self.conn.execute_query(sql, list(values))

    # -- implemented per dialect -------------------------------------------------------------
    async def existing_transfers(self, transfer_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        raise NotImplementedError

    async def latest_batches(self, keys: Sequence[BatchKey]) -> dict[BatchKey, BatchRow]:
        raise NotImplementedError

    async def lock_batches(self, batch_ids: Sequence[int], exclusive: bool = False) -> dict[int, BatchRow]:
        raise NotImplementedError

    async def insert_transfers(self, rows: Sequence[TransferRow], now: datetime) -> set[str]:
        raise NotImplementedError

    async def add_to_accounts(self, deltas: Sequence[AccountDelta]) -> None:
        raise NotImplementedError

    async def add_participants(self, participant_ids: Sequence[str], now: datetime) -> None:
        raise NotImplementedError

    async def add_to_bucket_totals(self, deltas: Sequence[AccountDelta], created_batch_ids: Sequence[int]) -> None:
        """Add filed amounts (and new batches to the counts) to the hourly rollup that matrix reads sum
        (app/matrix_totals.py), under the batch's current status, in the recording transaction."""
        raise NotImplementedError

    async def set_status(
        self, batch_ids: Sequence[int], status: str, owner_matrix_id: int | None, now: datetime
    ) -> None:
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

    # -- shared, a dialect may do them in fewer statements ---------------------------------------
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
    ) -> None:
        """Move the (locked) batches from their status (as read, same order) to `to_status` and write one
        history row each."""
        if not batch_ids:
            return
        await self.set_status(batch_ids, to_status, owner_matrix_id, at)
        await self.add_history([(b, f, to_status) for b, f in zip(batch_ids, from_statuses, strict=True)], at,
                               actor, reason, matrix_id)

    async def models_and_transfers(
        self, transfer_ids: Sequence[str]
    ) -> tuple[list[dict[str, Any]], dict[str, tuple[str, int]]]:
        """The settlement_model rows, and the stored (fingerprint, batch id) of these transfer ids."""
        return await self.rows(MODELS_SQL), await self.existing_transfers(transfer_ids)

    async def latest_batches_locked(self, keys: Sequence[BatchKey]) -> dict[BatchKey, BatchRow]:
        """The highest sequence of each key, locked FOR SHARE, as it is once the lock is held."""
        latest = await self.latest_batches(keys)
        locked = await self.lock_batches([row.id for row in latest.values()])
        return {key: locked[row.id] for key, row in latest.items() if row.id in locked}

    async def file_rows(self, rows: Sequence[TransferRow], now: datetime, created_batch_ids: Sequence[int]) -> set[str]:
        """Insert the rows (ids already stored are skipped), add the inserted ones to their batch accounts,
        to the participants and to the hourly rollup (with the batches this call created); returns the
        inserted ids."""
        inserted = await self.insert_transfers(rows, now)
        filed = [r for r in rows if r.transfer_id in inserted]
        deltas = account_deltas(filed)
        await self.add_to_accounts(deltas)
        await self.add_participants(sorted({r.payer_id for r in filed} | {r.payee_id for r in filed}), now)
        await self.add_to_bucket_totals(deltas, created_batch_ids)
        return inserted

    # -- shared --------------------------------------------------------------------------------
    async def create_batch(self, batch: NewBatch, sequence: int, name: str, now: datetime) -> int | None:
        """Insert the next sequence of a key; None when a concurrent recorder created it first."""
        key = batch.key
        segment = json.dumps([{"key": k, "value": v} for k, v in batch.segment], separators=(",", ":"))
        p = self.placeholders(11)
        rows = await self.rows(
            f"INSERT INTO batch (model_id, currency, segment, segment_key, window_start, window_end, "
            f"sequence, name, status, created_at, updated_at) "
            f"VALUES ({p[0]}, {p[1]}, {self.json_param(p[2])}, {p[3]}, {p[4]}, {p[5]}, {p[6]}, {p[7]}, "
            f"{p[8]}, {p[9]}, {p[10]}) ON CONFLICT DO NOTHING RETURNING id",
            [key.model_id, key.currency, segment, key.segment_key, key.window_start, batch.window_end,
             sequence, name, "OPEN", now, now],
        )
        return int(rows[0]["id"]) if rows else None

    def placeholders(self, count: int) -> list[str]:
        raise NotImplementedError

    def json_param(self, placeholder: str) -> str:
        return placeholder


class PostgresBatchStore(BatchStore):
    dialect = "postgres"

    def placeholders(self, count: int) -> list[str]:
        return [f"${i + 1}" for i in range(count)]

    def json_param(self, placeholder: str) -> str:
        return f"{placeholder}::jsonb"

    async def existing_transfers(self, transfer_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        rows = await self.rows(
            "SELECT transfer_id, fingerprint, batch_id FROM transfer WHERE transfer_id = ANY($1::text[])",
            [list(transfer_ids)],
        )
        return {r["transfer_id"]: (r["fingerprint"], r["batch_id"]) for r in rows}

    async def latest_batches(self, keys: Sequence[BatchKey]) -> dict[BatchKey, BatchRow]:
        rows = await self.rows(
            "SELECT k.model_id, k.currency, k.segment_key, k.window_start, b.id, b.status, b.sequence, "
            "b.owner_matrix_id "
            "FROM unnest($1::int[], $2::text[], $3::text[], $4::timestamptz[]) "
            "AS k(model_id, currency, segment_key, window_start) "
            "CROSS JOIN LATERAL (SELECT id, status, sequence, owner_matrix_id FROM batch "
            "  WHERE batch.model_id = k.model_id AND batch.currency = k.currency "
            "  AND batch.segment_key = k.segment_key AND batch.window_start = k.window_start "
            "  ORDER BY sequence DESC LIMIT 1) AS b",
            [[k.model_id for k in keys], [k.currency for k in keys], [k.segment_key for k in keys],
             [k.window_start for k in keys]],
        )
        return {
            BatchKey(r["model_id"], r["currency"], r["segment_key"], r["window_start"]):
                BatchRow(r["id"], r["status"], r["sequence"], r["owner_matrix_id"])
            for r in rows
        }

    async def latest_batches_locked(self, keys: Sequence[BatchKey]) -> dict[BatchKey, BatchRow]:
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
                BatchRow(r["id"], r["status"], r["sequence"], r["owner_matrix_id"])
            for r in rows
        }

    async def models_and_transfers(
        self, transfer_ids: Sequence[str]
    ) -> tuple[list[dict[str, Any]], dict[str, tuple[str, int]]]:
        # One round trip: the model rows, then the stored transfers (rows with a transfer_id).
        rows = await self.rows(
            f"SELECT {MODEL_COLUMNS}, NULL::text AS transfer_id, NULL::text AS fingerprint, "
            "NULL::bigint AS batch_id FROM settlement_model UNION ALL "
            "SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, transfer_id, fingerprint, batch_id FROM transfer "
            "WHERE transfer_id = ANY($1::text[])",
            [list(transfer_ids)],
        )
        models = [r for r in rows if r["transfer_id"] is None]
        existing = {r["transfer_id"]: (r["fingerprint"], r["batch_id"]) for r in rows if r["transfer_id"] is not None}
        return models, existing

    async def file_rows(self, rows: Sequence[TransferRow], now: datetime, created_batch_ids: Sequence[int]) -> set[str]:
        # One statement: the transfers, then from the rows actually inserted (a concurrent call may have
        # recorded some ids first) the account sums, the participants and the hourly rollup (as
        # add_to_bucket_totals), each in key order.
        if not rows:
            await self.add_to_bucket_totals([], created_batch_ids)
            return set()
        ordered = sorted(rows, key=lambda r: r.transfer_id)
        inserted = await self.rows(
            "WITH ins AS (INSERT INTO transfer (transfer_id, payer_id, payee_id, amount, currency, "
            "committed_at, model_id, attributes, refund_of, batch_id, fingerprint, recorded_at) "
            "SELECT t.transfer_id, t.payer_id, t.payee_id, t.amount, t.currency, t.committed_at, "
            "t.model_id, t.attributes::jsonb, t.refund_of, t.batch_id, t.fingerprint, $12::timestamptz "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[], "
            "$7::int[], $8::text[], $9::text[], $10::bigint[], $11::text[]) "
            "AS t(transfer_id, payer_id, payee_id, amount, currency, committed_at, model_id, attributes, "
            "refund_of, batch_id, fingerprint) "
            "ON CONFLICT (transfer_id) DO NOTHING "
            "RETURNING transfer_id, batch_id, payer_id, payee_id, amount, currency), "
            "legs AS (SELECT batch_id, payer_id AS participant_id, currency, amount AS debit, 0::bigint AS credit "
            "  FROM ins UNION ALL SELECT batch_id, payee_id, currency, 0::bigint, amount FROM ins), "
            "accounts AS (INSERT INTO batch_account (batch_id, participant_id, currency, debit, credit, "
            "  transfer_count) "
            "  SELECT batch_id, participant_id, min(currency), sum(debit)::bigint, sum(credit)::bigint, "
            "  count(*)::int FROM legs GROUP BY batch_id, participant_id ORDER BY batch_id, participant_id "
            "  ON CONFLICT (batch_id, participant_id) DO UPDATE SET "
            "  debit = batch_account.debit + EXCLUDED.debit, credit = batch_account.credit + EXCLUDED.credit, "
            "  transfer_count = batch_account.transfer_count + EXCLUDED.transfer_count), "
            "participants AS (INSERT INTO participant (id, created_at) "
            "  SELECT DISTINCT participant_id, $12::timestamptz FROM legs ORDER BY 1 ON CONFLICT (id) DO NOTHING), "
            f"buckets AS (INSERT INTO batch_bucket_total ({BUCKET_KEY}, debit, credit, batch_count, version) "
            f"  SELECT b.model_id, b.currency, b.segment_key, {bucket_of('postgres')}, b.status, d.participant_id, "
            "  sum(d.debit)::bigint, sum(d.credit)::bigint, sum(d.n)::int, 1 "
            "  FROM (SELECT batch_id, participant_id, debit, credit, 0 AS n FROM legs UNION ALL "
            "        SELECT c, '', 0, 0, 1 FROM unnest($13::bigint[]) AS c) AS d JOIN batch b ON b.id = d.batch_id "
            f"  GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6 {BUCKET_UPSERT}) "
            "SELECT transfer_id FROM ins",
            [
                [r.transfer_id for r in ordered], [r.payer_id for r in ordered],
                [r.payee_id for r in ordered], [r.amount for r in ordered], [r.currency for r in ordered],
                [r.committed_at for r in ordered], [r.model_id for r in ordered],
                [_attributes_json(r.attributes) for r in ordered], [r.refund_of for r in ordered],
                [r.batch_id for r in ordered], [r.fingerprint for r in ordered], now, list(created_batch_ids),
            ],
        )
        return {r["transfer_id"] for r in inserted}

    async def lock_batches(self, batch_ids: Sequence[int], exclusive: bool = False) -> dict[int, BatchRow]:
        # The locked rows come back as four arrays in one row: a matrix locking 86,400 batches decodes
        # four arrays instead of 86,400 records (a third of a second saved).
        mode = "UPDATE" if exclusive else "SHARE"
        _, rows = await self.conn.execute_query(
            "SELECT array_agg(id ORDER BY id), array_agg(status ORDER BY id), array_agg(sequence ORDER BY id), "
            "array_agg(owner_matrix_id ORDER BY id) FROM (SELECT id, status, sequence, owner_matrix_id FROM batch "
            f"WHERE id = ANY($1::bigint[]) ORDER BY id FOR {mode}) AS locked",
            [sorted(set(batch_ids))],
        )
        if not rows or rows[0][0] is None:
            return {}
        ids, statuses, sequences, owners = rows[0]
        return {i: BatchRow(i, s, n, o) for i, s, n, o in zip(ids, statuses, sequences, owners, strict=True)}

    async def insert_transfers(self, rows: Sequence[TransferRow], now: datetime) -> set[str]:
        ordered = sorted(rows, key=lambda r: r.transfer_id)
        inserted = await self.rows(
            "WITH ins AS (INSERT INTO transfer (transfer_id, payer_id, payee_id, amount, currency, "
            "committed_at, model_id, attributes, refund_of, batch_id, fingerprint, recorded_at) "
            "SELECT t.transfer_id, t.payer_id, t.payee_id, t.amount, t.currency, t.committed_at, "
            "t.model_id, t.attributes::jsonb, t.refund_of, t.batch_id, t.fingerprint, $12 "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[], "
            "$7::int[], $8::text[], $9::text[], $10::bigint[], $11::text[]) "
            "AS t(transfer_id, payer_id, payee_id, amount, currency, committed_at, model_id, attributes, "
            "refund_of, batch_id, fingerprint) "
            "ON CONFLICT (transfer_id) DO NOTHING RETURNING transfer_id) SELECT transfer_id FROM ins",
            [
                [r.transfer_id for r in ordered], [r.payer_id for r in ordered],
                [r.payee_id for r in ordered], [r.amount for r in ordered], [r.currency for r in ordered],
                [r.committed_at for r in ordered], [r.model_id for r in ordered],
                [_attributes_json(r.attributes) for r in ordered], [r.refund_of for r in ordered],
                [r.batch_id for r in ordered], [r.fingerprint for r in ordered], now,
            ],
        )
        return {r["transfer_id"] for r in inserted}

    async def add_to_accounts(self, deltas: Sequence[AccountDelta]) -> None:
        ordered = sorted(deltas, key=lambda d: (d.batch_id, d.participant_id))
        await self.execute(
            "INSERT INTO batch_account (batch_id, participant_id, currency, debit, credit, transfer_count) "
            "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::int[]) "
            "ON CONFLICT (batch_id, participant_id) DO UPDATE SET "
            "debit = batch_account.debit + EXCLUDED.debit, credit = batch_account.credit + EXCLUDED.credit, "
            "transfer_count = batch_account.transfer_count + EXCLUDED.transfer_count",
            [[d.batch_id for d in ordered], [d.participant_id for d in ordered],
             [d.currency for d in ordered], [d.debit for d in ordered], [d.credit for d in ordered],
             [d.transfer_count for d in ordered]],
        )

    async def add_to_bucket_totals(self, deltas: Sequence[AccountDelta], created_batch_ids: Sequence[int]) -> None:
        items = [(d.batch_id, d.participant_id, d.debit, d.credit, 0) for d in deltas]
        items += [(batch_id, "", 0, 0, 1) for batch_id in created_batch_ids]
        if not items:
            return
        await self.execute(
            f"INSERT INTO batch_bucket_total ({BUCKET_KEY}, debit, credit, batch_count, version) "
            f"SELECT b.model_id, b.currency, b.segment_key, {bucket_of('postgres')}, b.status, d.participant_id, "
            "sum(d.debit)::bigint, sum(d.credit)::bigint, sum(d.n)::int, 1 "
            "FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::int[]) "
            "AS d(batch_id, participant_id, debit, credit, n) JOIN batch b ON b.id = d.batch_id "
            f"GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6 {BUCKET_UPSERT}",
            [[i[0] for i in items], [i[1] for i in items], [i[2] for i in items], [i[3] for i in items],
             [i[4] for i in items]],
        )

    async def add_participants(self, participant_ids: Sequence[str], now: datetime) -> None:
        await self.execute(
            "INSERT INTO participant (id, created_at) SELECT p, $2 FROM unnest($1::text[]) AS p "
            "ORDER BY p ON CONFLICT (id) DO NOTHING",
            [sorted(participant_ids), now],
        )

    async def set_status(
        self, batch_ids: Sequence[int], status: str, owner_matrix_id: int | None, now: datetime
    ) -> None:
        await self.execute(
            "UPDATE batch SET status = $2, owner_matrix_id = $3, updated_at = $4 WHERE id = ANY($1::bigint[])",
            [list(batch_ids), status, owner_matrix_id, now],
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
    ) -> None:
        # One statement, one round trip: the update (only from the status the caller saw) and the history
        # rows of what it updated. Every batch must move, else nothing does.
        if not batch_ids:
            return
        _, rows = await self.conn.execute_query(
            "WITH c AS (SELECT * FROM unnest($1::bigint[], $2::text[]) AS c(b, f)), "
            "upd AS (UPDATE batch SET status = $3, owner_matrix_id = $4, updated_at = $5 FROM c "
            "  WHERE batch.id = c.b AND batch.status = c.f RETURNING c.b, c.f), "
            "ins AS (INSERT INTO batch_status_change (batch_id, from_status, to_status, at, actor, reason, matrix_id) "
            "  SELECT b, f, $3, $5, $6, $7, $8 FROM upd RETURNING 1) "
            "SELECT count(*) FROM ins",
            [list(batch_ids), list(from_statuses), to_status, owner_matrix_id, at, actor, reason, matrix_id],
        )
        if int(rows[0][0]) != len(batch_ids):
            raise RuntimeError(f"{len(batch_ids) - int(rows[0][0])} of {len(batch_ids)} batch(es) were not in the "
                               f"status they were read in; nothing was changed")

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


class SqliteBatchStore(BatchStore):
    dialect = "sqlite"

    def placeholders(self, count: int) -> list[str]:
        return ["?"] * count

    async def existing_transfers(self, transfer_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        found: dict[str, tuple[str, int]] = {}
        for chunk in _chunks(list(transfer_ids)):
            marks = ",".join("?" * len(chunk))
            for r in await self.rows(
                f"SELECT transfer_id, fingerprint, batch_id FROM transfer WHERE transfer_id IN ({marks})", chunk
            ):
                found[r["transfer_id"]] = (r["fingerprint"], r["batch_id"])
        return found

    async def latest_batches(self, keys: Sequence[BatchKey]) -> dict[BatchKey, BatchRow]:
        found: dict[BatchKey, BatchRow] = {}
        for key in keys:
            rows = await self.rows(
                "SELECT id, status, sequence, owner_matrix_id FROM batch WHERE model_id = ? AND currency = ? "
                "AND segment_key = ? AND window_start = ? ORDER BY sequence DESC LIMIT 1",
                [key.model_id, key.currency, key.segment_key, key.window_start],
            )
            if rows:
                r = rows[0]
                found[key] = BatchRow(r["id"], r["status"], r["sequence"], r["owner_matrix_id"])
        return found

    async def lock_batches(self, batch_ids: Sequence[int], exclusive: bool = False) -> dict[int, BatchRow]:
        # The SQLite transaction already excludes every other writer and reader.
        found: dict[int, BatchRow] = {}
        for chunk in _chunks(sorted(set(batch_ids))):
            marks = ",".join("?" * len(chunk))
            for r in await self.rows(
                f"SELECT id, status, sequence, owner_matrix_id FROM batch WHERE id IN ({marks})", chunk
            ):
                found[r["id"]] = BatchRow(r["id"], r["status"], r["sequence"], r["owner_matrix_id"])
        return found

    async def insert_transfers(self, rows: Sequence[TransferRow], now: datetime) -> set[str]:
        # Existing ids were filtered out under the same (exclusive) transaction: every row goes in.
        await self.conn.execute_many(
            "INSERT INTO transfer (transfer_id, payer_id, payee_id, amount, currency, committed_at, model_id, "
            "attributes, refund_of, batch_id, fingerprint, recorded_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [[r.transfer_id, r.payer_id, r.payee_id, r.amount, r.currency, r.committed_at, r.model_id,
              _attributes_json(r.attributes), r.refund_of, r.batch_id, r.fingerprint, now] for r in rows],
        )
        return {r.transfer_id for r in rows}

    async def add_to_accounts(self, deltas: Sequence[AccountDelta]) -> None:
        await self.conn.execute_many(
            "INSERT INTO batch_account (batch_id, participant_id, currency, debit, credit, transfer_count) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT (batch_id, participant_id) DO UPDATE SET "
            "debit = debit + excluded.debit, credit = credit + excluded.credit, "
            "transfer_count = transfer_count + excluded.transfer_count",
            [[d.batch_id, d.participant_id, d.currency, d.debit, d.credit, d.transfer_count] for d in deltas],
        )

    async def add_to_bucket_totals(self, deltas: Sequence[AccountDelta], created_batch_ids: Sequence[int]) -> None:
        items = [[d.participant_id, d.debit, d.credit, 0, d.batch_id] for d in deltas]
        items += [["", 0, 0, 1, batch_id] for batch_id in created_batch_ids]
        if items:
            await self.conn.execute_many(
                f"INSERT INTO batch_bucket_total ({BUCKET_KEY}, debit, credit, batch_count, version) "
                f"SELECT b.model_id, b.currency, b.segment_key, {bucket_of('sqlite')}, b.status, ?, ?, ?, ?, 1 "
                f"FROM batch b WHERE b.id = ? {BUCKET_UPSERT}",
                items,
            )

    async def add_participants(self, participant_ids: Sequence[str], now: datetime) -> None:
        await self.conn.execute_many(
            "INSERT INTO participant (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
            [[p, now] for p in sorted(participant_ids)],
        )

    async def set_status(
        self, batch_ids: Sequence[int], status: str, owner_matrix_id: int | None, now: datetime
    ) -> None:
        for chunk in _chunks(list(batch_ids)):
            marks = ",".join("?" * len(chunk))
            await self.execute(
                f"UPDATE batch SET status = ?, owner_matrix_id = ?, updated_at = ? WHERE id IN ({marks})",
                [status, owner_matrix_id, now, *chunk],
            )

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
        await self.conn.execute_many(
            "INSERT INTO batch_status_change (batch_id, from_status, to_status, at, actor, reason, matrix_id) "
            "VALUES (?,?,?,?,?,?,?)",
            [[b, f, t, at, actor, reason, matrix_id] for b, f, t in changes],
        )


def store_for(conn: Any) -> BatchStore:
    if conn.capabilities.dialect == "postgres":
        return PostgresBatchStore(conn)
    return SqliteBatchStore(conn)
