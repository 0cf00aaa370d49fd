"""Live matrix totals (SPEC §6): the hand-written SQL that sums a matrix's batches, both dialects.

Nothing here is stored: every read sums the batches' live accounts (batch_account, updated in the
transaction that records a transfer) or, for the whole hours of an OPEN DYNAMIC matrix, the hourly
rollup kept beside them (batch_bucket_total). The settleable part and the checksum follow from the
same rows, so they are right the moment a transfer is recorded or a batch changes status.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from models.matrices import SettlementMatrix

BUCKET_SECONDS = 3600
OPEN, CLOSED, AWAITING_SETTLEMENT = "OPEN", "CLOSED", "AWAITING_SETTLEMENT"


class Sql:
    """Numbered placeholders ($n for PostgreSQL, ?n for SQLite) collected with their values."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.values: list[Any] = []

    def p(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}" if self.dialect == "postgres" else f"?{len(self.values)}"

    def in_list(self, values: Iterable[Any]) -> str:
        return ", ".join(self.p(v) for v in values)


def dialect_of(conn: Any) -> str:
    return "postgres" if conn.capabilities.dialect == "postgres" else "sqlite"


def split_set(text: str) -> list[str]:
    """The members of a delimited set column (",USD,EUR," -> ["USD", "EUR"]; "" -> [])."""
    return [part for part in text.split(",") if part]


def join_set(values: Iterable[str]) -> str:
    items = list(values)
    return f",{','.join(items)}," if items else ""


def is_live(matrix: SettlementMatrix) -> bool:
    """A DYNAMIC matrix follows its criteria while OPEN; otherwise its members are listed in matrix_batch."""
    return matrix.type == "DYNAMIC" and matrix.status == "OPEN"


def members_where(q: Sql, matrix: SettlementMatrix, start: datetime | None = None,
                  end: datetime | None = None) -> str:
    """The SQL condition on `batch b` that selects the matrix's batches (optionally a sub-range of windows)."""
    if not is_live(matrix):
        # Listed batches, and the ones it locked (or settled): a frozen DYNAMIC matrix lists only the rest.
        m = q.p(matrix.id)
        listed = f"SELECT mb.batch_id FROM matrix_batch mb WHERE mb.matrix_id = {m}"
        return f"(b.owner_matrix_id = {m} OR b.id IN ({listed}))"
    parts = [
        f"b.model_id = {q.p(matrix.model_id)}",  # type: ignore[attr-defined]
        f"b.window_start >= {q.p(start or matrix.period_start)}",
        f"b.window_start < {q.p(end or matrix.period_end)}",
    ]
    currencies = split_set(matrix.currencies)
    if currencies:
        parts.append(f"b.currency IN ({q.in_list(currencies)})")
    if matrix.segment_key is not None:
        parts.append(f"b.segment_key = {q.p(matrix.segment_key)}")
    statuses = split_set(matrix.batch_statuses)
    if statuses:
        parts.append(f"b.status IN ({q.in_list(statuses)})")
    return " AND ".join(parts)


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


@dataclass(frozen=True)
class AccountTotal:
    participant_id: str
    currency: str
    debit: int
    credit: int

    @property
    def net(self) -> int:
        return self.credit - self.debit


@dataclass(frozen=True)
class StatusTotal:
    status: str
    currency: str
    batch_count: int
    debit: int
    credit: int


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    batch_count: int
    debit: int
    credit: int


@dataclass(frozen=True)
class MatrixTotals:
    participants: list[AccountTotal]
    settleable: list[AccountTotal]
    by_status: list[StatusTotal]
    by_currency: list[CurrencyTotal]
    batch_count: int
    checksum: str


@dataclass(frozen=True)
class _AccountRow:  # one participant's sums over the batches of one (status, owned-by-this-matrix) group
    status: str
    own: bool
    participant_id: str
    currency: str
    debit: int
    credit: int


@dataclass(frozen=True)
class _BatchRow:  # batch count and change marker of one (status, owned, currency) group
    status: str
    own: bool
    currency: str
    count: int
    marker: str


def is_settleable(matrix_status: str, batch_status: str, owned: bool) -> bool:
    """SPEC §6: an OPEN matrix may settle its OPEN and CLOSED batches (and those it locked itself); once
    settlement is requested, exactly the batches it locked; a settled matrix nothing more."""
    if matrix_status == "OPEN":
        return batch_status in (OPEN, CLOSED) or (batch_status == AWAITING_SETTLEMENT and owned)
    if matrix_status == "AWAITING_SETTLEMENT":
        return batch_status == AWAITING_SETTLEMENT and owned
    return False


async def _base_rows(conn: Any, matrix: SettlementMatrix, start: datetime | None = None,
                     end: datetime | None = None) -> tuple[list[_AccountRow], list[_BatchRow]]:
    """Sums straight from the batches' accounts (STATIC and frozen matrices, and partial hours)."""
    q = Sql(dialect_of(conn))
    own = f"CASE WHEN b.owner_matrix_id = {q.p(matrix.id)} THEN 1 ELSE 0 END"
    where = members_where(q, matrix, start, end)
    accounts = await conn.execute_query_dict(
        f"SELECT b.status AS status, {own} AS own, a.participant_id AS participant_id, a.currency AS currency, "
        f"SUM(a.debit) AS debit, SUM(a.credit) AS credit "
        f"FROM batch b JOIN batch_account a ON a.batch_id = b.id WHERE {where} GROUP BY 1, 2, 3, 4",
        q.values,
    )
    q = Sql(dialect_of(conn))
    own = f"CASE WHEN b.owner_matrix_id = {q.p(matrix.id)} THEN 1 ELSE 0 END"
    where = members_where(q, matrix, start, end)
    batches = await conn.execute_query_dict(
        f"SELECT b.status AS status, {own} AS own, b.currency AS currency, COUNT(*) AS n, "
        f"SUM(b.id) AS id_sum, MAX(b.updated_at) AS changed FROM batch b WHERE {where} GROUP BY 1, 2, 3",
        q.values,
    )
    return (
        [_AccountRow(r["status"], bool(r["own"]), r["participant_id"], r["currency"], int(r["debit"]),
                     int(r["credit"])) for r in accounts],
        [_BatchRow(r["status"], bool(r["own"]), r["currency"], int(r["n"]), f"{r['id_sum']}@{r['changed']}")
         for r in batches],
    )


def _epoch(value: datetime) -> int:
    return int(value.astimezone(UTC).timestamp())


def _full_hours(start: datetime, end: datetime) -> tuple[int, int] | None:
    """The whole rollup buckets inside [start, end), as epoch seconds [lo, hi); None when there are none."""
    lo = -(-_epoch(start) // BUCKET_SECONDS) * BUCKET_SECONDS
    hi = _epoch(end) // BUCKET_SECONDS * BUCKET_SECONDS
    return (lo, hi) if lo < hi else None


async def _rollup_rows(conn: Any, matrix: SettlementMatrix, lo: int, hi: int
                       ) -> tuple[list[_AccountRow], list[_BatchRow]]:
    """Sums of the hourly rollup over whole buckets [lo, hi): a few rows per hour, whatever the batch count."""
    q = Sql(dialect_of(conn))
    parts = [f"t.model_id = {q.p(matrix.model_id)}", f"t.bucket >= {q.p(lo)}",  # type: ignore[attr-defined]
             f"t.bucket < {q.p(hi)}"]
    currencies = split_set(matrix.currencies)
    if currencies:
        parts.append(f"t.currency IN ({q.in_list(currencies)})")
    if matrix.segment_key is not None:
        parts.append(f"t.segment_key = {q.p(matrix.segment_key)}")
    statuses = split_set(matrix.batch_statuses)
    if statuses:
        parts.append(f"t.status IN ({q.in_list(statuses)})")
    rows = await conn.execute_query_dict(
        "SELECT t.status AS status, t.participant_id AS participant_id, t.currency AS currency, "
        "SUM(t.debit) AS debit, SUM(t.credit) AS credit, SUM(t.batch_count) AS n, SUM(t.version) AS version "
        f"FROM batch_bucket_total t WHERE {' AND '.join(parts)} GROUP BY 1, 2, 3",
        q.values,
    )
    accounts: list[_AccountRow] = []
    batches: list[_BatchRow] = []
    versions: dict[tuple[str, str], int] = defaultdict(int)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        key = (r["status"], r["currency"])
        versions[key] += int(r["version"])
        counts[key] += int(r["n"])
        if r["participant_id"] and (int(r["debit"]) or int(r["credit"])):  # rows emptied by status moves stay
            accounts.append(_AccountRow(r["status"], False, r["participant_id"], r["currency"], int(r["debit"]),
                                        int(r["credit"])))
    for (status, currency), count in counts.items():
        batches.append(_BatchRow(status, False, currency, count, f"v{versions[(status, currency)]}"))
    return accounts, batches


async def _rows(conn: Any, matrix: SettlementMatrix) -> tuple[list[_AccountRow], list[_BatchRow]]:
    if not is_live(matrix):
        return await _base_rows(conn, matrix)
    assert matrix.period_start is not None and matrix.period_end is not None
    hours = _full_hours(matrix.period_start, matrix.period_end)
    if hours is None:
        return await _base_rows(conn, matrix)
    # An OPEN matrix owns no locks, so the rollup (which does not know owners) is exact for it.
    lo, hi = hours
    accounts, batches = await _rollup_rows(conn, matrix, lo, hi)
    for edge_start, edge_end in ((matrix.period_start, datetime.fromtimestamp(lo, UTC)),
                                 (datetime.fromtimestamp(hi, UTC), matrix.period_end)):
        if edge_start < edge_end:
            more_accounts, more_batches = await _base_rows(conn, matrix, edge_start, edge_end)
            accounts += more_accounts
            batches += more_batches
    return accounts, batches


def _summarise(matrix: SettlementMatrix, accounts: Sequence[_AccountRow], batches: Sequence[_BatchRow]
               ) -> MatrixTotals:
    everything: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    settleable: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    status_sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    currency_sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for a in accounts:
        key = (a.participant_id, a.currency)
        everything[key][0] += a.debit
        everything[key][1] += a.credit
        if is_settleable(matrix.status, a.status, a.own):
            settleable[key][0] += a.debit
            settleable[key][1] += a.credit
        # Gross totals: every transfer is one payer debit and one payee credit of the same amount.
        status_sums[(a.status, a.currency)][1] += a.debit
        status_sums[(a.status, a.currency)][2] += a.credit
        currency_sums[a.currency][1] += a.debit
        currency_sums[a.currency][2] += a.credit
    markers: list[list[Any]] = []
    for b in batches:
        status_sums[(b.status, b.currency)][0] += b.count
        currency_sums[b.currency][0] += b.count
        if is_settleable(matrix.status, b.status, b.own):
            markers.append([b.status, b.own, b.currency, b.count, b.marker])

    def totals(sums: dict[tuple[str, str], list[int]]) -> list[AccountTotal]:
        return [AccountTotal(p, c, v[0], v[1]) for (p, c), v in sorted(sums.items())]

    settleable_totals = totals(settleable)
    content = {
        "matrix": [matrix.id, matrix.status, matrix.version],
        "batches": sorted(markers, key=str),
        "settleable": [[t.participant_id, t.currency, t.debit, t.credit] for t in settleable_totals],
    }
    digest = hashlib.sha256(json.dumps(content, separators=(",", ":"), default=str).encode()).hexdigest()
    return MatrixTotals(
        participants=totals(everything),
        settleable=settleable_totals,
        by_status=[StatusTotal(s, c, v[0], v[1], v[2]) for (s, c), v in sorted(status_sums.items()) if any(v)],
        by_currency=[CurrencyTotal(c, v[0], v[1], v[2]) for c, v in sorted(currency_sums.items()) if any(v)],
        batch_count=sum(b.count for b in batches),
        checksum=digest[:40],
    )


async def totals(conn: Any, matrix: SettlementMatrix) -> MatrixTotals:
    accounts, batches = await _rows(conn, matrix)
    return _summarise(matrix, accounts, batches)


async def member_ids(conn: Any, matrix: SettlementMatrix) -> list[int]:
    q = Sql(dialect_of(conn))
    if q.dialect == "postgres":  # one array, not a record per batch
        _, rows = await conn.execute_query(
            f"SELECT array_agg(b.id ORDER BY b.id) FROM batch b WHERE {members_where(q, matrix)}", q.values)
        return list(rows[0][0] or []) if rows else []
    _, rows = await conn.execute_query(f"SELECT b.id FROM batch b WHERE {members_where(q, matrix)} ORDER BY b.id",
                                       q.values)
    return [int(r[0]) for r in rows]


async def add_members(conn: Any, matrix_id: int, batch_ids: Sequence[int]) -> None:
    """List batches as members of a matrix (a STATIC matrix, or a DYNAMIC one whose set is being frozen)."""
    if not batch_ids:
        return
    if dialect_of(conn) == "postgres":
        await conn.execute_query(
            "INSERT INTO matrix_batch (matrix_id, batch_id) SELECT $1, b FROM unnest($2::bigint[]) AS b ORDER BY b "
            "ON CONFLICT DO NOTHING", [matrix_id, list(batch_ids)])
        return
    await conn.execute_many("INSERT INTO matrix_batch (matrix_id, batch_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                            [[matrix_id, batch_id] for batch_id in batch_ids])


async def owned_totals(conn: Any, matrix_id: int) -> list[AccountTotal]:
    """Per participant and currency, the sums over the batches this matrix has locked (what it settles)."""
    q = Sql(dialect_of(conn))
    rows = await conn.execute_query_dict(
        "SELECT a.participant_id AS participant_id, a.currency AS currency, SUM(a.debit) AS debit, "
        "SUM(a.credit) AS credit FROM batch b JOIN batch_account a ON a.batch_id = b.id "
        f"WHERE b.owner_matrix_id = {q.p(matrix_id)} AND b.status = {q.p(AWAITING_SETTLEMENT)} "
        "GROUP BY 1, 2 ORDER BY 1, 2",
        q.values,
    )
    return [AccountTotal(r["participant_id"], r["currency"], int(r["debit"]), int(r["credit"])) for r in rows]


async def owned_ids(conn: Any, matrix_id: int, status: str) -> list[int]:
    return [batch_id for batch_id, _ in await owned_batches(conn, matrix_id, status)]


async def owned_batches(conn: Any, matrix_id: int, status: str) -> list[tuple[int, int]]:
    """(id, sequence) of the batches in `status` that this matrix owns, in id order (on PostgreSQL as two
    arrays: a day of one-second batches is 86,400 of them)."""
    if dialect_of(conn) == "postgres":
        _, rows = await conn.execute_query(
            "SELECT array_agg(id ORDER BY id), array_agg(sequence ORDER BY id) FROM batch "
            "WHERE owner_matrix_id = $1 AND status = $2", [matrix_id, status])
        ids, sequences = rows[0] if rows else (None, None)
        return list(zip(ids or [], sequences or [], strict=True))
    q = Sql(dialect_of(conn))
    _, rows = await conn.execute_query(
        f"SELECT id, sequence FROM batch WHERE owner_matrix_id = {q.p(matrix_id)} AND status = {q.p(status)} "
        "ORDER BY id",
        q.values,
    )
    return [(int(r[0]), int(r[1])) for r in rows]


async def unowned_members(conn: Any, matrix: SettlementMatrix) -> list[tuple[int, str, int, int | None]]:
    """The members of a frozen matrix that it has not locked (disputed, settled or locked elsewhere)."""
    q = Sql(dialect_of(conn))
    rows = await conn.execute_query_dict(
        f"SELECT b.id AS id, b.status AS status, b.sequence AS sequence, b.owner_matrix_id AS owner FROM batch b "
        f"WHERE {members_where(q, matrix)} AND (b.owner_matrix_id IS NULL OR b.owner_matrix_id <> {q.p(matrix.id)} "
        f"OR b.status <> {q.p(AWAITING_SETTLEMENT)}) ORDER BY b.id",
        q.values,
    )
    return [(int(r["id"]), r["status"], int(r["sequence"]), r["owner"]) for r in rows]


# -- the hourly rollup (batch_bucket_total) -----------------------------------------------------------

def bucket_of(dialect: str, column: str = "b.window_start") -> str:
    """SQL for the epoch second of the hour a batch window starts in."""
    if dialect == "postgres":
        return f"(EXTRACT(EPOCH FROM {column})::bigint / {BUCKET_SECONDS} * {BUCKET_SECONDS})"
    return f"(CAST(strftime('%s', {column}) AS INTEGER) / {BUCKET_SECONDS} * {BUCKET_SECONDS})"


BUCKET_KEY = "model_id, currency, segment_key, bucket, status, participant_id"
BUCKET_UPSERT = (
    f"ON CONFLICT ({BUCKET_KEY}) DO UPDATE SET debit = batch_bucket_total.debit + excluded.debit, "
    "credit = batch_bucket_total.credit + excluded.credit, "
    "batch_count = batch_bucket_total.batch_count + excluded.batch_count, version = batch_bucket_total.version + 1"
)
SQLITE_CHUNK = 400  # bound variables per statement


@dataclass(frozen=True)
class BucketMove:
    """The sums of some batches of one rollup row (key without status), leaving `from_status`."""

    model_id: int
    currency: str
    segment_key: str
    bucket: int
    from_status: str
    participant_id: str
    debit: int
    credit: int
    batch_count: int


async def bucket_sums(conn: Any, batch_ids: Sequence[int]) -> list[BucketMove]:
    """The rollup contributions of these batches under their current status, per rollup row.

    Call it holding the batches' row locks. On PostgreSQL, where all the batches of a rollup row move (a
    matrix settling whole hours), the row itself is their sum: it is read (locked) instead of the batches'
    accounts, so settling a day of one-second batches reads a few hundred rows, not 864,000."""
    if dialect_of(conn) != "postgres":
        return await _account_sums(conn, batch_ids)
    bucket = bucket_of("postgres")
    _, counted = await conn.execute_query(
        f"SELECT b.model_id, b.currency, b.segment_key, {bucket}, b.status, COUNT(*) FROM batch b "
        "WHERE b.id = ANY($1::bigint[]) GROUP BY 1, 2, 3, 4, 5", [list(batch_ids)])
    moving = {(r[0], r[1], r[2], int(r[3]), r[4]): int(r[5]) for r in counted}
    if not moving:
        return []
    keys = sorted(moving)
    _, rolled = await conn.execute_query(
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
        _, partial = await conn.execute_query(
            f"SELECT b.id FROM batch b WHERE b.id = ANY($1::bigint[]) AND ({bucket}, b.model_id, b.currency, "
            "b.segment_key, b.status) NOT IN (SELECT * FROM unnest($2::bigint[], $3::int[], $4::text[], "
            "$5::text[], $6::text[]))",
            [list(batch_ids), [k[3] for k in whole], [k[0] for k in whole], [k[1] for k in whole],
             [k[2] for k in whole], [k[4] for k in whole]])
        moves += await _account_sums(conn, [int(r[0]) for r in partial])
    return moves


async def _account_sums(conn: Any, batch_ids: Sequence[int]) -> list[BucketMove]:
    dialect = dialect_of(conn)
    bucket = bucket_of(dialect)
    found: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    size = len(batch_ids) if dialect == "postgres" else SQLITE_CHUNK
    for start in range(0, len(batch_ids), max(size, 1)):
        chunk = list(batch_ids[start:start + size])
        q = Sql(dialect)
        chosen = f"= ANY({q.p(chunk)}::bigint[])" if dialect == "postgres" else f"IN ({q.in_list(chunk)})"
        rows = await conn.execute_query_dict(
            f"SELECT b.model_id AS model_id, b.currency AS currency, b.segment_key AS segment_key, "
            f"{bucket} AS bucket, b.status AS status, a.participant_id AS participant_id, "
            "SUM(a.debit) AS d, SUM(a.credit) AS k, 0 AS n FROM batch b JOIN batch_account a ON a.batch_id = b.id "
            f"WHERE b.id {chosen} GROUP BY 1, 2, 3, 4, 5, 6 "
            f"UNION ALL SELECT b.model_id, b.currency, b.segment_key, {bucket}, b.status, '', 0, 0, COUNT(*) "
            f"FROM batch b WHERE b.id {chosen} GROUP BY 1, 2, 3, 4, 5",
            q.values,
        )
        for r in rows:
            key = (r["model_id"], r["currency"], r["segment_key"], int(r["bucket"]), r["status"], r["participant_id"])
            sums = found[key]
            sums[0] += int(r["d"])
            sums[1] += int(r["k"])
            sums[2] += int(r["n"])
    return [BucketMove(*key, *sums) for key, sums in found.items()]


def participant_totals(moves: Sequence[BucketMove]) -> list[AccountTotal]:
    """Per participant and currency, the sums of the moved batches."""
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for m in moves:
        if m.participant_id and (m.debit or m.credit):  # rollup rows emptied by earlier moves stay behind
            sums[(m.participant_id, m.currency)][0] += m.debit
            sums[(m.participant_id, m.currency)][1] += m.credit
    return [AccountTotal(p, c, d, k) for (p, c), (d, k) in sorted(sums.items())]


async def apply_bucket_moves(conn: Any, moves: Sequence[BucketMove], to_status: str) -> None:
    """Take the sums out of their old status rows and add them to the `to_status` rows: a few rows per hour."""
    deltas: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    for m in moves:
        if m.from_status == to_status:
            continue
        for status, sign in ((m.from_status, -1), (to_status, 1)):
            sums = deltas[(m.model_id, m.currency, m.segment_key, m.bucket, status, m.participant_id)]
            sums[0] += sign * m.debit
            sums[1] += sign * m.credit
            sums[2] += sign * m.batch_count
    if not deltas:
        return
    rows = [(*key, *sums) for key, sums in sorted(deltas.items())]  # key order: no deadlock between movers
    if dialect_of(conn) == "postgres":
        columns = list(zip(*rows, strict=True))
        await conn.execute_query(
            f"INSERT INTO batch_bucket_total ({BUCKET_KEY}, debit, credit, batch_count, version) "
            "SELECT *, 1 FROM unnest($1::int[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], "
            f"$7::bigint[], $8::bigint[], $9::int[]) {BUCKET_UPSERT}",
            [list(column) for column in columns],
        )
        return
    await conn.execute_many(
        f"INSERT INTO batch_bucket_total ({BUCKET_KEY}, debit, credit, batch_count, version) "
        f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1) {BUCKET_UPSERT}",
        [list(r) for r in rows],
    )


async def rebuild_bucket_totals(conn: Any) -> None:
    """Recompute the whole rollup from the batches (bulk loads and benchmarks; never needed in operation)."""
    bucket = bucket_of(dialect_of(conn))
    await conn.execute_query("DELETE FROM batch_bucket_total")
    await conn.execute_query(
        f"INSERT INTO batch_bucket_total ({BUCKET_KEY}, debit, credit, batch_count, version) "
        f"SELECT b.model_id, b.currency, b.segment_key, {bucket}, b.status, a.participant_id, SUM(a.debit), "
        "SUM(a.credit), 0, 1 FROM batch b JOIN batch_account a ON a.batch_id = b.id GROUP BY 1, 2, 3, 4, 5, 6 "
        f"UNION ALL SELECT b.model_id, b.currency, b.segment_key, {bucket}, b.status, '', 0, 0, COUNT(*), 1 "
        "FROM batch b GROUP BY 1, 2, 3, 4, 5"
    )
