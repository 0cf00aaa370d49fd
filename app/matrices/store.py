"""The hand-written SQL of settlement matrices (SPEC §6): which batches a matrix holds, and the sums its live totals
are made of (app/matrices/totals.py). One interface, one implementation per dialect: they differ where PostgreSQL
reads or writes a long list of ids as one array instead of a row per id."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.batches.rollup import PG_BUCKET
from app.batches.status import BatchStatus
from app.batches.store import BatchGroup as LockedGroup
from app.batches.store import LockedRows
from app.db.dialect import POSTGRES, SQLITE, Sql, Store
from app.matrices.rules import MatrixType, is_live, split_set
from models.matrices import SettlementMatrix


@dataclass(frozen=True)
class AccountSums:  # one participant's sums over the batches of one (status, owned-by-this-matrix) group
    status: str
    own: bool
    participant_id: str
    currency: str
    debit: int
    credit: int


@dataclass(frozen=True)
class BatchGroup:  # batch count and change marker of one (status, owned, currency) group
    status: str
    own: bool
    currency: str
    count: int
    marker: str


@dataclass(frozen=True)
class Member:
    id: int
    status: str
    sequence: int
    owner_matrix_id: int | None


def members_where(q: Sql, matrix: SettlementMatrix, start: datetime | None = None,
                  end: datetime | None = None) -> str:
    """The SQL condition on `batch b` that selects the matrix's batches (optionally a sub-range of windows)."""
    if not is_live(matrix):
        m = q.p(matrix.id)
        listed = f"b.id IN (SELECT mb.batch_id FROM matrix_batch mb WHERE mb.matrix_id = {m})"
        if matrix.type == MatrixType.STATIC:
            return listed  # every member is listed, the ones it locked included
        # A frozen DYNAMIC matrix lists the members it did not lock; those it locked (or settled) are known by their
        # owner, among the batches of its period (owner_matrix_id has no index: locking is a HOT update).
        return " AND ".join([f"b.window_start >= {q.p(matrix.period_start)}",
                             f"b.window_start < {q.p(matrix.period_end)}",
                             *criteria_where(q, matrix, "b", statuses=False),
                             f"(b.owner_matrix_id = {m} OR {listed})"])
    return " AND ".join([f"b.window_start >= {q.p(start or matrix.period_start)}",
                         f"b.window_start < {q.p(end or matrix.period_end)}", *criteria_where(q, matrix, "b")])


def owned_where(q: Sql, matrix: SettlementMatrix, status: str) -> str:
    """The SQL condition on `batch b` that selects the batches in `status` this (frozen) matrix owns."""
    return f"{members_where(q, matrix)} AND b.owner_matrix_id = {q.p(matrix.id)} AND b.status = {q.p(status)}"


def criteria_where(q: Sql, matrix: SettlementMatrix, alias: str, statuses: bool = True) -> list[str]:
    """The conditions of a live matrix's criteria besides its period, on a table with model_id, currency,
    segment_key and status columns (a batch, or a row of the hourly rollup); without the batch statuses when
    `statuses` is false (they change, the rest of a batch's criteria do not)."""
    parts = [f"{alias}.model_id = {q.p(matrix.model_id)}"]  # type: ignore[attr-defined]
    currencies = split_set(matrix.currencies)
    if currencies:
        parts.append(f"{alias}.currency IN ({q.in_list(currencies)})")
    if matrix.segment_key is not None:
        parts.append(f"{alias}.segment_key = {q.p(matrix.segment_key)}")
    wanted = split_set(matrix.batch_statuses) if statuses else []
    if wanted:
        parts.append(f"{alias}.status IN ({q.in_list(wanted)})")
    return parts


# The condition on the outer `batch` table (as Tortoise names it) for BatchFilter.inAnyMatrix: locked or settled
# by a matrix, listed in one, or matching an OPEN DYNAMIC matrix's criteria. Plain SQL, the same in both dialects.
IN_ANY_MATRIX_SQL = (
    "CASE WHEN \"batch\".\"owner_matrix_id\" IS NOT NULL "
    "OR EXISTS (SELECT 1 FROM matrix_batch mb WHERE mb.batch_id = \"batch\".\"id\") "
    "OR EXISTS (SELECT 1 FROM settlement_matrix m WHERE m.type = 'DYNAMIC' AND m.status = 'OPEN' "
    "AND m.model_id = \"batch\".\"model_id\" AND \"batch\".\"window_start\" >= m.period_start "
    "AND \"batch\".\"window_start\" < m.period_end "
    "AND (m.currencies = '' OR m.currencies LIKE '%,' || \"batch\".\"currency\" || ',%') "
    "AND (m.segment_key IS NULL OR m.segment_key = \"batch\".\"segment_key\") "
    "AND (m.batch_statuses = '' OR m.batch_statuses LIKE '%,' || \"batch\".\"status\" || ',%')) "
    "THEN 1 ELSE 0 END"
)


class MatrixStore(Store):
    """A matrix's members and sums, in the transaction (or connection) of `conn`."""

    # -- implemented per dialect -----------------------------------------------------------------
    async def ids_where(self, q: Sql, where: str) -> list[int]:
        """The ids of the batches `b` matching `where` (parameters in q), in id order."""
        raise NotImplementedError

    async def add_members(self, matrix_id: int, batch_ids: Sequence[int]) -> None:
        """List batches as members of a matrix (a STATIC matrix, or a DYNAMIC one whose set is being frozen)."""
        raise NotImplementedError

    async def owned_rows(self, matrix: SettlementMatrix, status: str) -> LockedRows:
        """The batches in `status` this (frozen) matrix owns, grouped (not locked: only its own commands move them)."""
        return LockedRows([LockedGroup(status, matrix.id, await self.owned_batches(matrix, status))])

    async def lock_members(self, matrix: SettlementMatrix) -> LockedRows:
        """Lock the matrix's batches FOR UPDATE, in id order (racing matrix-wide commands queue here), and answer
        them as they are once locked: selected and locked in one statement, their ids never sent back and forth."""
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------------
    async def owned_batches(self, matrix: SettlementMatrix, status: str) -> list[int]:
        """The ids of the batches in `status` that this (frozen) matrix owns, in id order."""
        q = self.sql()
        return await self.ids_where(q, owned_where(q, matrix, status))

    async def account_rows(self, matrix: SettlementMatrix, start: datetime | None = None,
                           end: datetime | None = None) -> tuple[list[AccountSums], list[BatchGroup]]:
        """Sums straight from the batches' accounts (STATIC and frozen matrices, and partial hours)."""
        q = self.sql()
        own = f"CASE WHEN b.owner_matrix_id = {q.p(matrix.id)} THEN 1 ELSE 0 END"
        where = members_where(q, matrix, start, end)
        accounts = await self.rows(
            f"SELECT b.status AS status, {own} AS own, a.participant_id AS participant_id, a.currency AS currency, "
            f"SUM(a.debit) AS debit, SUM(a.credit) AS credit "
            f"FROM batch b JOIN batch_account a ON a.batch_id = b.id WHERE {where} GROUP BY 1, 2, 3, 4",
            q.values,
        )
        q = self.sql()
        own = f"CASE WHEN b.owner_matrix_id = {q.p(matrix.id)} THEN 1 ELSE 0 END"
        where = members_where(q, matrix, start, end)
        batches = await self.rows(
            f"SELECT b.status AS status, {own} AS own, b.currency AS currency, COUNT(*) AS n, "
            f"SUM(b.id) AS id_sum, MAX(b.updated_at) AS changed FROM batch b WHERE {where} GROUP BY 1, 2, 3",
            q.values,
        )
        return (
            [AccountSums(r["status"], bool(r["own"]), r["participant_id"], r["currency"], int(r["debit"]),
                        int(r["credit"])) for r in accounts],
            [BatchGroup(r["status"], bool(r["own"]), r["currency"], int(r["n"]), f"{r['id_sum']}@{r['changed']}")
             for r in batches],
        )

    async def rollup_rows(self, matrix: SettlementMatrix, lo: int, hi: int) -> list[dict[str, object]]:
        """Sums of the hourly rollup (app/batches/rollup.py) over whole buckets [lo, hi) of a live matrix."""
        q = self.sql()
        parts = [f"t.bucket >= {q.p(lo)}", f"t.bucket < {q.p(hi)}", *criteria_where(q, matrix, "t")]
        return await self.rows(
            "SELECT t.status AS status, t.participant_id AS participant_id, t.currency AS currency, "
            "SUM(t.debit) AS debit, SUM(t.credit) AS credit, SUM(t.batch_count) AS n, SUM(t.version) AS version "
            f"FROM batch_bucket_total t WHERE {' AND '.join(parts)} GROUP BY 1, 2, 3",
            q.values,
        )

    async def unowned_members(self, matrix: SettlementMatrix) -> list[Member]:
        """The members of a frozen matrix that it has not locked (disputed, settled or locked elsewhere)."""
        q = self.sql()
        rows = await self.rows(
            f"SELECT b.id AS id, b.status AS status, b.sequence AS sequence, b.owner_matrix_id AS owner FROM batch b "
            f"WHERE {members_where(q, matrix)} AND (b.owner_matrix_id IS NULL OR b.owner_matrix_id <> "
            f"{q.p(matrix.id)} OR b.status <> {q.p(BatchStatus.AWAITING_SETTLEMENT.value)}) ORDER BY b.id",
            q.values,
        )
        return [Member(int(r["id"]), r["status"], int(r["sequence"]), r["owner"]) for r in rows]


GROUP_ROLLUP = f"b.model_id, b.currency, b.segment_key, {PG_BUCKET}"  # a batch's hourly rollup row (PostgreSQL)


def _grouped(rows: Sequence[Sequence[Any]]) -> LockedRows:
    """(status, owner, ids, model, currency, segment key, bucket) rows."""
    return LockedRows([LockedGroup(r[0], r[1], list(r[2]), (r[3], r[4], r[5], int(r[6]))) for r in rows])


class PostgresMatrixStore(MatrixStore, dialect=POSTGRES):
    # A day of one-second batches is 86,400 members: ids travel as one array, not a record each.
    async def ids_where(self, q: Sql, where: str) -> list[int]:
        rows = await self.tuples(f"SELECT array_agg(b.id ORDER BY b.id) FROM batch b WHERE {where}", q.values)
        return list(rows[0][0] or []) if rows else []

    async def lock_members(self, matrix: SettlementMatrix) -> LockedRows:
        q = self.sql()
        # Grouped by rollup row too: the status change that follows knows how many batches leave each one.
        rows = await self.tuples(
            f"SELECT b.status, b.owner_matrix_id, array_agg(b.id ORDER BY b.id), {GROUP_ROLLUP} FROM (SELECT b.id, "
            "b.status, b.owner_matrix_id, b.model_id, b.currency, b.segment_key, b.window_start FROM batch b "
            f"WHERE {members_where(q, matrix)} ORDER BY b.id FOR UPDATE OF b) AS b GROUP BY 1, 2, 4, 5, 6, 7",
            q.values)
        return _grouped(rows)

    async def owned_rows(self, matrix: SettlementMatrix, status: str) -> LockedRows:
        q = self.sql()
        rows = await self.tuples(
            f"SELECT b.status, b.owner_matrix_id, array_agg(b.id ORDER BY b.id), {GROUP_ROLLUP} FROM batch b "
            f"WHERE {owned_where(q, matrix, status)} GROUP BY 1, 2, 4, 5, 6, 7", q.values)
        return _grouped(rows)

    async def add_members(self, matrix_id: int, batch_ids: Sequence[int]) -> None:
        if batch_ids:
            await self.execute("INSERT INTO matrix_batch (matrix_id, batch_id) SELECT $1, b FROM "
                               "unnest($2::bigint[]) AS b ORDER BY b ON CONFLICT DO NOTHING",
                               [matrix_id, list(batch_ids)])



class SqliteMatrixStore(MatrixStore, dialect=SQLITE):
    async def ids_where(self, q: Sql, where: str) -> list[int]:
        rows = await self.tuples(f"SELECT b.id FROM batch b WHERE {where} ORDER BY b.id", q.values)
        return [int(r[0]) for r in rows]

    async def lock_members(self, matrix: SettlementMatrix) -> LockedRows:
        # The SQLite transaction already excludes every other writer.
        q = self.sql()
        where = members_where(q, matrix)
        rows = await self.tuples(f"SELECT b.id, b.status, b.owner_matrix_id FROM batch b WHERE {where} ORDER BY b.id",
                                 q.values)
        return LockedRows.grouped((int(r[0]), r[1], r[2]) for r in rows)

    async def add_members(self, matrix_id: int, batch_ids: Sequence[int]) -> None:
        await self.execute_many("INSERT INTO matrix_batch (matrix_id, batch_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                                [[matrix_id, batch_id] for batch_id in batch_ids])

