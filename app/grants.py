"""Payment grants (SPEC §9): spending limits over repeating intervals, safe under races.

From Rafiki's grant spent amounts, with the gaps that design leaves closed:
- Every change of a limited grant's spending (prepare, commit, abort) appends one `GrantSpentAmount` row —
  the transfer's amounts, its interval, the running sums of that interval and of the grant, the state — in
  the transaction that holds the grant's lock: `SELECT ... FOR NO KEY UPDATE` of the grant row on
  PostgreSQL; on SQLite, Tortoise's single connection runs one transaction at a time. Appends of one grant
  are therefore serialised, and "latest" means the highest id (a database sequence taken under the lock),
  never a wall-clock timestamp. The limit check and the reservation happen under the same lock, so
  concurrent prepares cannot overspend.
- A transfer's spending stays in the period it was prepared in: a late commit or abort adjusts that period's
  sums (continuing from that period's latest row) and the grant total (from the grant's latest row), and
  never touches the sums of the current period.
- Reading: the current period's latest row, or zero with the currency when it has none.
- Retried prepares, commits and aborts change nothing and answer the same state.
- Reconciliation recomputes every sum from the prepared transfers and their states; a mismatch or a
  missing record is logged and counted (metric), never repaired.
Money is integers of minor units (app/money.py); time comes from app/clock.py.
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import audit, clock, database, errors, group_commit, intervals, metrics, money, recording
from app.auth import Principal
from app.batch_store import MODEL_COLUMNS
from app.batches import parse_id
from app.errors import (
    AMOUNT_EXCEEDS_RESERVED,
    GRANT_CURRENCY_MISMATCH,
    GRANT_LIMIT_EXCEEDED,
    GRANT_NOT_ACTIVE,
    GRANT_PAYEE_MISMATCH,
    GRANT_PAYER_MISMATCH,
    ONLY_ONE_GRANT_AMOUNT,
    DomainError,
)
from app.group_commit import Dirty, GroupWriter
from app.intervals import Period
from app.recording import RecordingResult, TransferRequest
from models.grants import Grant, GrantSpentAmount, PreparedTransfer

log = logging.getLogger("settlegraph.grants")

@dataclass(frozen=True)
class AuditNote:
    """A prepare's, commit's or abort's audit entry (SPEC §10) with outcome OK, written inside the transaction
    that makes the change (with the other entries of its group), so one commit carries both. A refusal writes
    nothing there; the caller then records the refusal. Logged once the transaction committed."""

    principal: Principal | None
    operation: str
    target: str | None

    def entry(self) -> audit.Entry:
        return audit.entry(self.principal, self.operation, self.target, "OK")


# Record kinds and states (the stable refusal codes are in app/errors.py).
DEBIT = "DEBIT"
RECEIVE = "RECEIVE"
RESERVED = "RESERVED"
COMMITTED = "COMMITTED"
ABORTED = "ABORTED"
MAX_REASON_LENGTH = 512


# -- grants ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GrantSpec:
    payer_id: str
    payee_id: str | None
    limit_kind: str | None
    limit_amount: int | None
    currency: str | None
    interval: str | None


def validate_grant(
    payer_id: str,
    payee_id: str | None,
    debit_amount: tuple[str, str] | None,
    receive_amount: tuple[str, str] | None,
    interval: str | None,
) -> GrantSpec:
    """A grant as given (amounts as (value, currency)), checked; pure."""
    _check_participant(payer_id, "payerId")
    if payee_id is not None:
        _check_participant(payee_id, "payeeId")
        if payee_id == payer_id:
            raise DomainError(errors.SAME_PARTICIPANT, "payer and payee must differ", ["payeeId"])
    if debit_amount is not None and receive_amount is not None:
        raise DomainError(ONLY_ONE_GRANT_AMOUNT, "a grant limits either debitAmount or receiveAmount, not both",
                          ["receiveAmount"])
    kind, limit, currency = None, None, None
    for name, given in ((DEBIT, debit_amount), (RECEIVE, receive_amount)):
        if given is not None:
            where = "debitAmount" if name == DEBIT else "receiveAmount"
            value, currency = given
            limit = _amount(value, currency, where, allow_zero=False)
            kind = name
    if interval is not None:
        intervals.parse(interval)
    return GrantSpec(payer_id, payee_id, kind, limit, currency, interval)


async def create_grant(spec: GrantSpec, actor: str) -> Grant:
    return await Grant.create(
        payer_id=spec.payer_id, payee_id=spec.payee_id, limit_kind=spec.limit_kind, limit_amount=spec.limit_amount,
        currency=spec.currency, interval=spec.interval, created_by=actor, created_at=clock.now(),
    )


async def find_grant(grant_id: str | int) -> Grant | None:
    try:
        number = parse_id(grant_id, "id")
    except DomainError:
        return None
    return await Grant.get_or_none(id=number)


def _check_participant(value: str, name: str) -> None:
    if not value or len(value) > recording.MAX_ID_LENGTH or value != value.strip() \
            or any(ord(ch) < 32 for ch in value):
        raise DomainError(errors.VALIDATION, f"{name} must be 1-{recording.MAX_ID_LENGTH} characters without "
                          "surrounding spaces or control characters", [name])


def _amount(value: str, currency: str, where: str, *, allow_zero: bool) -> int:
    try:
        minor = money.to_minor(money.parse_decimal(value), currency)
    except DomainError as exc:
        sub = "currency" if exc.code == errors.UNKNOWN_CURRENCY else "value"
        raise DomainError(exc.code, exc.message, [where, sub]) from None
    if minor < 0 or (minor == 0 and not allow_zero):
        raise DomainError(errors.AMOUNT_NOT_POSITIVE,
                          f"{where} must be {'zero or more' if allow_zero else 'positive'}, got {value}", [where])
    return minor


# -- spent amounts ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sums:
    """The latest running sums of a grant (total) and of one of its periods; zero where no row exists yet."""

    total_debit: int = 0
    total_receive: int = 0
    interval_debit: int = 0
    interval_receive: int = 0
    has_total: bool = False
    has_interval: bool = False


@dataclass(frozen=True)
class Spent:
    """What a grant reports: the current period's (or overall) sums of the kinds it limits."""

    debit: int | None
    receive: int | None
    currency: str | None
    period: Period | None
    total_debit: int | None
    total_receive: int | None


class _Sql:
    """Hand-written statements of the hot path, written with $n placeholders (SQLite reads them as ?n)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.postgres = conn.capabilities.dialect == "postgres"

    async def rows(self, sql: str, values: Sequence[Any]) -> list[dict[str, Any]]:
        text = sql if self.postgres else sql.replace("$", "?")
        return list(await self.conn.execute_query_dict(text, list(values)))


_LATEST_TOTAL = ("SELECT 0 AS scope, total_debit AS debit, total_receive AS receive FROM "
                 "(SELECT total_debit, total_receive FROM grant_spent_amount WHERE grant_id = $1 "
                 "ORDER BY id DESC LIMIT 1) t")
_LATEST_INTERVAL = ("SELECT 1 AS scope, interval_debit AS debit, interval_receive AS receive FROM "
                    "(SELECT interval_debit, interval_receive FROM grant_spent_amount WHERE grant_id = $1 "
                    "AND interval_index = $2 ORDER BY id DESC LIMIT 1) i")


async def latest_sums(conn: Any, grant_id: int, interval_index: int | None) -> Sums:
    """The grant's latest sums, and those of period `interval_index` — one round trip."""
    return (await _lookup(conn, grant_id, interval_index, None)).sums


@dataclass(frozen=True)
class _Found:
    sums: Sums
    prepared: bool  # the transfer id is already prepared
    recorded: bool  # the transfer id is already recorded as a cleared transfer


async def _lookup(conn: Any, grant_id: int | None, interval_index: int | None, transfer_id: str | None) -> _Found:
    """Latest sums of a grant (and of one period) and whether a transfer id is taken, in one round trip."""
    parts: list[str] = []
    values: list[Any] = []
    if grant_id is not None:
        values.append(grant_id)
        parts.append(_LATEST_TOTAL)
        if interval_index is not None:
            values.append(interval_index)
            parts.append(_LATEST_INTERVAL)
    if transfer_id is not None:
        values.append(transfer_id)
        n = len(values)
        parts.append(f"SELECT 2 AS scope, 0 AS debit, 0 AS receive FROM transfer WHERE transfer_id = ${n}")
        parts.append(f"SELECT 3 AS scope, 0 AS debit, 0 AS receive FROM prepared_transfer WHERE transfer_id = ${n}")
    rows = await _Sql(conn).rows(" UNION ALL ".join(parts), values) if parts else []
    sums: dict[str, Any] = {}
    scopes = set()
    for row in rows:
        scope = int(row["scope"])
        scopes.add(scope)
        if scope == 0:
            sums.update(total_debit=int(row["debit"]), total_receive=int(row["receive"]), has_total=True)
        elif scope == 1:
            sums.update(interval_debit=int(row["debit"]), interval_receive=int(row["receive"]), has_interval=True)
    return _Found(Sums(**sums), prepared=3 in scopes, recorded=2 in scopes)


async def spent(grant: Grant, at: datetime | None = None) -> Spent:
    """SPEC §9: the sums of the period containing `at` (default now), or overall without an interval; zero
    with the currency when nothing is spent there; None for a kind the grant does not limit."""
    if grant.limit_kind is None:
        return Spent(None, None, None, None, None, None)
    period = intervals.parse(grant.interval).period_at(at or clock.now()) if grant.interval else None
    sums = await latest_sums(_connection(), grant.id, period.index if period else None)
    if grant.interval:
        debit, receive = sums.interval_debit, sums.interval_receive  # zero outside any period
    else:
        debit, receive = sums.total_debit, sums.total_receive
    return Spent(
        debit if grant.limit_kind == DEBIT else None,
        receive if grant.limit_kind == RECEIVE else None,
        grant.currency,
        period,
        sums.total_debit if grant.limit_kind == DEBIT else None,
        sums.total_receive if grant.limit_kind == RECEIVE else None,
    )


def _connection() -> Any:
    from tortoise import connections

    return connections.get("default")


async def _append(
    conn: Any,
    grant: Grant,
    transfer: PreparedTransfer,
    sums: Sums,
    *,
    state: str,
    transfer_debit: int,
    transfer_receive: int,
    debit_change: int,
    receive_change: int,
    actor: str,
    now: datetime,
) -> None:
    """Append one spent-amount row; the caller holds the grant's lock."""
    has_interval = transfer.interval_index is not None
    await GrantSpentAmount.create(
        using_db=conn,
        grant_id=grant.id,
        transfer_id=transfer.transfer_id,
        state=state,
        currency=transfer.currency,
        interval_index=transfer.interval_index,
        interval_start=transfer.interval_start,
        interval_end=transfer.interval_end,
        transfer_debit=transfer_debit,
        transfer_receive=transfer_receive,
        debit_change=debit_change,
        receive_change=receive_change,
        interval_debit=sums.interval_debit + debit_change if has_interval else None,
        interval_receive=sums.interval_receive + receive_change if has_interval else None,
        total_debit=sums.total_debit + debit_change,
        total_receive=sums.total_receive + receive_change,
        actor=actor,
        recorded_at=now,
    )


async def _lock_grant(conn: Any, grant_id: int) -> Grant:
    # FOR NO KEY UPDATE: exclusive among spenders, yet no wait for inserts that merely reference the grant.
    grant = await Grant.filter(id=grant_id).using_db(conn).select_for_update(no_key=True).first()
    if grant is None:
        raise DomainError(errors.NOT_FOUND, f"no grant {grant_id}", ["grantId"])
    return grant


def _note_missing(grant: Grant, transfer: PreparedTransfer, sums: Sums) -> None:
    """A reservation's rows must exist when it is committed or aborted; say so loudly if not (never repaired)."""
    if grant.limit_kind is None:
        return
    missing = not sums.has_total or (transfer.interval_index is not None and not sums.has_interval)
    if missing:
        metrics.GRANT_SPENT_AMOUNT_ISSUES.labels(kind="missing").inc()
        log.error("grant spent amounts missing for a reserved transfer",
                  extra={"grant_id": grant.id, "transfer_id": transfer.transfer_id,
                         "interval_index": transfer.interval_index})


# -- prepare ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PrepareRequest:
    transfer_id: str
    payer_id: str
    payee_id: str
    amount: str
    currency: str
    receive_amount: str | None = None
    grant_id: str | None = None
    prepared_at: datetime | None = None
    settlement_model: str | None = None
    attributes: Sequence[tuple[str, str]] | None = None


@dataclass(frozen=True)
class _Checked:
    amount: int
    receive_amount: int
    prepared_at: datetime
    grant_id: int | None
    attributes: list[tuple[str, str]]


async def prepare_transfer(request: PrepareRequest, actor: str, note: AuditNote | None = None) -> PreparedTransfer:
    """Reserve a transfer, under a grant's limit when it names one (SPEC §9). Concurrent prepares share
    transactions (app/group_commit.py): each runs as if alone, in arrival order, under the grant's lock."""
    if request.prepared_at is not None and request.prepared_at.tzinfo is None:
        raise DomainError(errors.VALIDATION, "preparedAt needs a UTC offset", ["preparedAt"])
    prepared_at = (request.prepared_at or clock.now()).astimezone(UTC)
    return await _writer("prepareTransfer", _prepare_group).submit(
        _Work(note, actor, request.transfer_id, (request, prepared_at)))


@dataclass(slots=True)
class _Work:
    """One prepare, commit or abort waiting for its group: its audit note and its arguments."""

    note: AuditNote | None
    actor: str
    transfer_id: str
    args: tuple[Any, ...]  # the rest of the call's arguments


GROUP_LIMIT = 200


def _writer(name: str, write: Any) -> GroupWriter[_Work, Any]:
    """Works of one kind share a group; a transfer appears at most once in a group, and one actor's works only
    (the actor is recorded on the batches a commit opens)."""
    return group_commit.writer(name, lambda: GroupWriter(name, write, limit=GROUP_LIMIT,
                                                         key=lambda work: work.actor,
                                                         unique=lambda work: work.transfer_id))


_RunAll = Callable[[Any, list[_Work], datetime], Awaitable[list[Any]]]


def _one_by_one(one: Callable[..., Awaitable[Any]]) -> _RunAll:
    """A group's works as `one(conn, *work.args, work.actor, now)` each, in order: each sees what the earlier
    ones wrote."""
    async def run_all(conn: Any, works: list[_Work], now: datetime) -> list[Any]:
        results: list[Any] = []
        for work in works:
            try:
                results.append(await one(conn, *work.args, work.actor, now))
            except DomainError as exc:
                results.append(exc)
        return results
    return run_all


async def _in_group(name: str, works: list[_Work], run_all: _RunAll) -> list[Any]:
    """Run the works in one transaction (`run_all` gives one result per work), with the audit entries of those
    that went through. A DomainError result is that work's refusal, having written nothing; an exception (also
    Dirty, a failure after writing) fails the group, and app/group_commit.py writes its works one by one."""
    async def transaction() -> list[Any]:
        now = clock.now()
        async with in_transaction() as conn:
            results = await run_all(conn, works, now)
            done = [w.note for w, r in zip(works, results, strict=True)
                    if w.note is not None and not isinstance(r, DomainError)]
            entries = [note.entry() for note in done]
            if entries:
                await audit.insert(conn, entries)
        for entry in entries:
            audit.log_entry(entry)
        return results

    for attempt in range(2):
        try:
            return await database.retrying_deadlocks(transaction, name)
        except IntegrityError:
            # The same transferId prepared concurrently outside a grant's lock: look again, answer as a retry.
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def _prepare_group(works: list[_Work]) -> list[Any]:
    return await _in_group("prepareTransfer", works, _prepare_all)


async def _prepare_all(conn: Any, works: list[_Work], now: datetime) -> list[Any]:
    """A group's prepares one by one, in arrival order. Lock order: when they name several grants, all of them
    first, in id order (commits take theirs in id order too), so that no two transactions wait on each other."""
    grant_ids = sorted({g for w in works if (g := _grant_number(w.args[0].grant_id)) is not None})
    if len(grant_ids) > 1 and _Sql(conn).postgres:
        await conn.execute_query("SELECT id FROM payment_grant WHERE id = ANY($1::bigint[]) ORDER BY id "
                                 "FOR NO KEY UPDATE", [grant_ids])
    return await _one_by_one(_prepare)(conn, works, now)


def _check(request: PrepareRequest, prepared_at: datetime, now: datetime,
           models: dict[str, recording.ModelInfo]) -> _Checked:
    """Everything a settlement transfer must satisfy (ids, amount, model, attributes, time) plus the receive
    amount and the grant id; pure."""
    as_transfer = TransferRequest(
        transfer_id=request.transfer_id, payer_id=request.payer_id, payee_id=request.payee_id,
        amount=request.amount, currency=request.currency, committed_at=prepared_at,
        settlement_model=request.settlement_model, attributes=request.attributes,
    )
    try:
        prepared = recording.prepare(as_transfer, 0, models, now)
    except DomainError as exc:
        where = ["preparedAt"] if exc.field == ["committedAt"] else exc.field
        raise DomainError(exc.code, exc.message.replace("committedAt", "preparedAt"), where) from None
    receive = prepared.row.amount
    if request.receive_amount is not None:
        try:
            receive = money.positive_minor(money.parse_decimal(request.receive_amount), request.currency)
        except DomainError as exc:
            raise DomainError(exc.code, exc.message, ["receiveAmount"]) from None
    grant_id = parse_id(request.grant_id, "grantId") if request.grant_id is not None else None
    return _Checked(prepared.row.amount, receive, prepared.row.committed_at, grant_id, list(prepared.row.attributes))


_TAKEN_PREPARED, _TAKEN_RECORDED = 3, 2

# One round trip at the start of a prepare: the settlement models, the grant (locked on PostgreSQL: FOR NO KEY
# UPDATE, exclusive among spenders yet no wait for inserts that merely reference the grant) and whether the
# transfer id is taken. The sums are NOT read here: in READ COMMITTED a statement sees the snapshot taken when it
# started, before a wait for the lock ended; they are read by the next statement, after the lock is held.
_START = (
    'WITH g AS (SELECT id, payer_id, payee_id, limit_kind, limit_amount, currency, "interval" '
    "FROM payment_grant WHERE id = $1{lock}) "
    f"SELECT {MODEL_COLUMNS}, NULL AS g_id, NULL AS g_payer, NULL AS g_payee, NULL AS g_kind, NULL AS g_limit, "
    "NULL AS g_currency, NULL AS g_interval, NULL AS taken FROM settlement_model "
    "UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, g.id, g.payer_id, g.payee_id, g.limit_kind, "
    'g.limit_amount, g.currency, g."interval", '
    f"CASE WHEN EXISTS (SELECT 1 FROM prepared_transfer WHERE transfer_id = $2) THEN {_TAKEN_PREPARED} "
    f"WHEN EXISTS (SELECT 1 FROM transfer WHERE transfer_id = $2) THEN {_TAKEN_RECORDED} ELSE 0 END "
    "FROM (SELECT 1 AS one) o LEFT JOIN g ON 1 = 1"
)
_PREPARED_COLUMNS = ("transfer_id, grant_id, payer_id, payee_id, currency, amount, receive_amount, settlement_model, "
                     "attributes, prepared_at, interval_index, interval_start, interval_end, state, prepared_by")
_SPENT_COLUMNS = ("grant_id, transfer_id, state, currency, interval_index, interval_start, interval_end, "
                  "transfer_debit, transfer_receive, debit_change, receive_change, interval_debit, interval_receive, "
                  "total_debit, total_receive, actor, recorded_at")
# PostgreSQL, a prepared transfer without limit: $1..$15 as _PREPARED_COLUMNS.
_INSERT_PREPARED = (f"INSERT INTO prepared_transfer ({_PREPARED_COLUMNS}) VALUES "
                    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id")
# PostgreSQL, under the grant's lock, in one statement: the latest sums (this statement's snapshot is taken after
# the lock was granted), the limit check, the prepared transfer and its spent-amount row. Inserts nothing when
# the amount does not fit; the sums come back either way (for the refusal's message). $1..$15 as
# _INSERT_PREPARED, then $16 the limited kind is DEBIT, $17 the amount counted against the limit, $18 the limit,
# $19 recorded_at.
_RESERVE_PG = (
    "WITH t AS (SELECT total_debit, total_receive FROM grant_spent_amount WHERE grant_id = $2 "
    "ORDER BY id DESC LIMIT 1), "
    "i AS (SELECT interval_debit, interval_receive FROM grant_spent_amount WHERE grant_id = $2 "
    "AND interval_index = $11 ORDER BY id DESC LIMIT 1), "
    "s AS (SELECT COALESCE(t.total_debit, 0) AS td, COALESCE(t.total_receive, 0) AS tr, "
    "COALESCE(i.interval_debit, 0) AS idb, COALESCE(i.interval_receive, 0) AS ir "
    "FROM (SELECT 1 AS one) o LEFT JOIN t ON TRUE LEFT JOIN i ON TRUE), "
    "ok AS (SELECT * FROM s WHERE CASE WHEN $16::boolean THEN (CASE WHEN $11::bigint IS NULL THEN td ELSE idb END) "
    "ELSE (CASE WHEN $11::bigint IS NULL THEN tr ELSE ir END) END + $17::bigint <= $18::bigint), "
    f"pt AS (INSERT INTO prepared_transfer ({_PREPARED_COLUMNS}) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, "
    "$10, $11, $12, $13, $14, $15 FROM ok RETURNING id), "
    f"sp AS (INSERT INTO grant_spent_amount ({_SPENT_COLUMNS}) SELECT $2, $1, $14, $5, $11, $12, $13, $6, $7, $6, "
    "$7, CASE WHEN $11::bigint IS NULL THEN NULL ELSE idb + $6 END, "
    "CASE WHEN $11::bigint IS NULL THEN NULL ELSE ir + $7 END, td + $6, tr + $7, $15, $19 FROM ok) "
    "SELECT td, tr, idb, ir, (SELECT id FROM pt) AS id FROM s"
)


@lru_cache(maxsize=1024)
def _interval(text: str) -> intervals.RepeatingInterval:
    """A grant's interval, parsed once per text (grants never change; the parse is pure)."""
    return intervals.parse(text)


async def _prepare(conn: Any, request: PrepareRequest, prepared_at: datetime, actor: str,
                   now: datetime) -> PreparedTransfer:
    """One prepare in the group's transaction; a refusal (DomainError) has written nothing."""
    sql = _Sql(conn)
    grant_number = _grant_number(request.grant_id)
    rows = await sql.rows(_START.format(lock=" FOR NO KEY UPDATE" if sql.postgres else ""),
                          [grant_number, request.transfer_id])
    # The one row without a model name carries the grant (or NULLs) and whether the id is taken.
    start = next(r for r in rows if r["name"] is None)
    checked = _check(request, prepared_at, now, recording.model_infos([r for r in rows if r["name"] is not None]))
    grant: Grant | None = None
    period: Period | None = None
    if checked.grant_id is not None:
        if start["g_id"] is None:
            raise DomainError(errors.NOT_FOUND, f"no grant {checked.grant_id}", ["grantId"])
        grant = Grant(id=int(start["g_id"]), payer_id=start["g_payer"], payee_id=start["g_payee"],
                      limit_kind=start["g_kind"], currency=start["g_currency"], interval=start["g_interval"],
                      limit_amount=int(start["g_limit"]) if start["g_limit"] is not None else None)
        if grant.interval:
            period = _interval(grant.interval).period_at(checked.prepared_at)
    taken = int(start["taken"])
    if taken == _TAKEN_PREPARED:  # a retry (same content) or a conflict, answered before any grant rule
        existing = await PreparedTransfer.get(transfer_id=request.transfer_id, using_db=conn)
        return _same_or_conflict(existing, request, checked)
    if taken == _TAKEN_RECORDED:
        raise DomainError(errors.TRANSFER_CONFLICT,
                          f"transfer {request.transfer_id} was already recorded as a cleared transfer",
                          ["transferId"])
    if grant is not None:
        _check_grant(grant, request)
        if grant.interval and period is None:
            raise DomainError(GRANT_NOT_ACTIVE, f"grant {grant.id}'s interval {grant.interval} has no period at "
                              f"{checked.prepared_at.isoformat()}", ["preparedAt"])
    transfer = PreparedTransfer(
        transfer_id=request.transfer_id, grant_id=grant.id if grant else None, payer_id=request.payer_id,
        payee_id=request.payee_id, currency=request.currency, amount=checked.amount,
        receive_amount=checked.receive_amount, settlement_model=request.settlement_model,
        attributes=[[k, v] for k, v in checked.attributes], prepared_at=checked.prepared_at,
        interval_index=period.index if period else None, interval_start=period.start if period else None,
        interval_end=period.end if period else None, state=RESERVED, prepared_by=actor,
    )
    if not sql.postgres:  # SQLite: one transaction at a time, so the order of reads and writes is free
        limited = grant is not None and grant.limit_kind is not None
        sums = Sums()
        if grant is not None and limited:
            sums = await latest_sums(conn, grant.id, period.index if period else None)
            _check_limit(grant, sums, period, checked)
        await transfer.save(using_db=conn)
        if grant is not None and limited:
            await _append(conn, grant, transfer, sums, state=RESERVED, transfer_debit=checked.amount,
                          transfer_receive=checked.receive_amount, debit_change=checked.amount,
                          receive_change=checked.receive_amount, actor=actor, now=now)
        return transfer
    values = [transfer.transfer_id, transfer.grant_id, transfer.payer_id,  # type: ignore[attr-defined]
              transfer.payee_id, transfer.currency, transfer.amount, transfer.receive_amount,
              transfer.settlement_model, _json(transfer.attributes), transfer.prepared_at, transfer.interval_index,
              transfer.interval_start, transfer.interval_end, transfer.state, transfer.prepared_by]
    if grant is None or grant.limit_kind is None:
        transfer.id = (await sql.rows(_INSERT_PREPARED, values))[0]["id"]
    else:
        assert grant.limit_amount is not None
        is_debit = grant.limit_kind == DEBIT
        row = (await sql.rows(_RESERVE_PG, [*values, is_debit,
                                            checked.amount if is_debit else checked.receive_amount,
                                            grant.limit_amount, now]))[0]
        if row["id"] is None:  # did not fit: the same check in Python words the refusal
            sums = Sums(int(row["td"]), int(row["tr"]), int(row["idb"]), int(row["ir"]))
            _check_limit(grant, sums, period, checked)
            raise AssertionError("the database refused a reservation that fits")  # pragma: no cover
        transfer.id = row["id"]
    transfer._saved_in_db = True
    return transfer


def _grant_number(grant_id: str | None) -> int | None:
    """The grant id to look up (None when none or malformed: _check words the refusal)."""
    if grant_id is None:
        return None
    try:
        return parse_id(grant_id, "grantId")
    except DomainError:
        return None


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _check_grant(grant: Grant, request: PrepareRequest) -> None:
    if request.payer_id != grant.payer_id:
        raise DomainError(GRANT_PAYER_MISMATCH,
                          f"grant {grant.id} belongs to payer {grant.payer_id}, not {request.payer_id}", ["payerId"])
    if grant.payee_id is not None and request.payee_id != grant.payee_id:
        raise DomainError(GRANT_PAYEE_MISMATCH,
                          f"grant {grant.id} only pays {grant.payee_id}, not {request.payee_id}", ["payeeId"])
    if grant.currency is not None and request.currency != grant.currency:
        raise DomainError(GRANT_CURRENCY_MISMATCH,
                          f"grant {grant.id} is limited in {grant.currency}, the transfer is in {request.currency}",
                          ["currency"])


def _check_limit(grant: Grant, sums: Sums, period: Period | None, checked: _Checked) -> None:
    assert grant.limit_amount is not None and grant.currency is not None
    if grant.limit_kind == DEBIT:
        spent, wanted, where = (sums.interval_debit if period else sums.total_debit), checked.amount, "amount"
    else:
        spent, wanted, where = (sums.interval_receive if period else sums.total_receive), checked.receive_amount, \
            "receiveAmount"
    if spent + wanted > grant.limit_amount:
        scope = f"in the period from {period.start.isoformat()}" if period else "overall"
        fmt = money.format_minor
        raise DomainError(
            GRANT_LIMIT_EXCEEDED,
            f"grant {grant.id}: {fmt(wanted, grant.currency)} {grant.currency} does not fit the "
            f"{str(grant.limit_kind).lower()} limit of {fmt(grant.limit_amount, grant.currency)} with "
            f"{fmt(spent, grant.currency)} spent {scope}",
            [where],
        )


def _same_or_conflict(existing: PreparedTransfer, request: PrepareRequest, checked: _Checked) -> PreparedTransfer:
    same = (
        existing.payer_id == request.payer_id and existing.payee_id == request.payee_id
        and existing.currency == request.currency and existing.amount == checked.amount
        and existing.receive_amount == checked.receive_amount
        and existing.grant_id == checked.grant_id  # type: ignore[attr-defined]
        and existing.settlement_model == request.settlement_model
        and [tuple(a) for a in existing.attributes or []] == [tuple(a) for a in checked.attributes]
    )
    if not same:
        raise DomainError(errors.TRANSFER_CONFLICT,
                          f"transfer {request.transfer_id} was already prepared with different content",
                          ["transferId"])
    return existing


# -- commit and abort ------------------------------------------------------------------------------------

@dataclass
class Completion:
    transfer: PreparedTransfer
    recording: RecordingResult | None = None  # None for a retry: nothing changed


async def commit_transfer(transfer_id: str, delivered_amount: str | None, committed_at: datetime | None,
                          actor: str, note: AuditNote | None = None) -> Completion:
    """Commit a reservation: file the transfer into settlement batches (SPEC §4) and give back the undelivered
    receive part; all in one transaction, shared with concurrent commits (app/group_commit.py)."""
    return await _writer("commitTransfer", _commit_group).submit(
        _Work(note, actor, transfer_id, (delivered_amount, committed_at)))


async def _commit_group(works: list[_Work]) -> list[Any]:
    return await _in_group("commitTransfer", works, _commit_all)


async def _commit_all(conn: Any, works: list[_Work], now: datetime) -> list[Any]:
    """The group's commits, set-wise: lock their transfers (in id order), check each, file the ones that pass
    in one go, then finish each (in grant order). Lock order: the transfers, the batches, then the grants."""
    results: list[Any] = [None] * len(works)
    locked = await _lock_transfers(conn, [w.transfer_id for w in works])
    checked: list[tuple[int, PreparedTransfer, int, datetime]] = []
    for index, work in enumerate(works):
        delivered_amount, committed_at = work.args
        try:
            transfer = locked.get(work.transfer_id)
            if transfer is None:
                raise DomainError(errors.NOT_FOUND, f"no prepared transfer {work.transfer_id}", ["transferId"])
            if transfer.state == COMMITTED:
                results[index] = Completion(transfer)
                continue
            delivered, when = _commit_check(transfer, delivered_amount, committed_at, now)
        except DomainError as exc:
            results[index] = exc
            continue
        checked.append((index, transfer, delivered, when))
    actor = works[0].actor  # a group's works share one actor
    filed = await recording.file_calls(conn, [[TransferRequest(
        transfer_id=transfer.transfer_id, payer_id=transfer.payer_id, payee_id=transfer.payee_id,
        amount=money.format_minor(transfer.amount, transfer.currency), currency=transfer.currency,
        committed_at=when, settlement_model=transfer.settlement_model,
        attributes=[(k, v) for k, v in transfer.attributes or []] or None,
    )] for _, transfer, _, when in checked], actor) if checked else []
    finishing = []
    for (index, transfer, delivered, when), result in zip(checked, filed, strict=True):
        outcome = result.outcomes[0]
        if outcome.outcome == "REJECTED":  # nothing was filed for it
            error = outcome.error or DomainError(errors.INTERNAL, "the transfer could not be filed")
            results[index] = DomainError(error.code, error.message,
                                         [f for f in error.field or [] if f not in ("transfers", "0")])
            continue
        results[index] = Completion(transfer, result)
        finishing.append((index, transfer, delivered, when))
    finishing.sort(key=lambda f: (f[1].grant_id or 0, f[0]))  # type: ignore[attr-defined]
    for _, transfer, delivered, when in finishing:
        try:
            await _finish(conn, transfer, {"state": COMMITTED, "delivered_amount": delivered, "committed_at": when,
                                           "finished_by": actor, "finished_at": now},
                          transfer_debit=transfer.amount, transfer_receive=delivered, actor=actor, now=now)
        except DomainError as exc:
            raise Dirty(exc) from exc  # the transfer is filed: only a rollback undoes it
    return results


async def _lock_transfers(conn: Any, transfer_ids: Sequence[str]) -> dict[str, PreparedTransfer]:
    """The prepared transfers, locked in id order (SQLite: the transaction excludes every other writer)."""
    sql = _Sql(conn)
    if sql.postgres:
        rows = await sql.rows("SELECT * FROM prepared_transfer WHERE transfer_id = ANY($1::text[]) ORDER BY id "
                              "FOR NO KEY UPDATE", [list(transfer_ids)])
    else:
        marks = ", ".join("?" * len(transfer_ids))
        rows = list(await conn.execute_query_dict(
            f"SELECT * FROM prepared_transfer WHERE transfer_id IN ({marks})", list(transfer_ids)))
    return {r["transfer_id"]: PreparedTransfer._init_from_db(**r) for r in rows}


def _part_of(value: str, transfer: PreparedTransfer, where: str, reserved: str, *, allow_zero: bool) -> int:
    """A delivered or sent amount: at most what the transfer reserved (its `reserved` "amount" or "receive
    amount")."""
    minor = _amount(value, transfer.currency, where, allow_zero=allow_zero)
    limit = transfer.receive_amount if reserved == "receive amount" else transfer.amount
    if minor > limit:
        raise DomainError(AMOUNT_EXCEEDS_RESERVED, f"{where} {value} exceeds the reserved {reserved} "
                          f"{money.format_minor(limit, transfer.currency)}", [where])
    return minor


def _commit_check(transfer: PreparedTransfer, delivered_amount: str | None, committed_at: datetime | None,
                  now: datetime) -> tuple[int, datetime]:
    """What a commit of the locked, not yet committed transfer delivers and when; pure."""
    if transfer.state == ABORTED:
        raise DomainError(errors.INVALID_TRANSITION,
                          f"transfer {transfer.transfer_id} was aborted: it cannot be committed", ["transferId"])
    delivered = transfer.receive_amount
    if delivered_amount is not None:
        delivered = _part_of(delivered_amount, transfer, "deliveredAmount", "receive amount", allow_zero=False)
    if committed_at is not None and committed_at.tzinfo is None:
        raise DomainError(errors.VALIDATION, "committedAt needs a UTC offset", ["committedAt"])
    when = (committed_at or now).astimezone(UTC)
    if when < transfer.prepared_at:
        raise DomainError(errors.VALIDATION, f"committedAt lies before preparedAt "
                          f"{transfer.prepared_at.isoformat()}", ["committedAt"])
    return delivered, when


async def abort_transfer(transfer_id: str, sent_amount: str | None, reason: str | None, actor: str,
                         note: AuditNote | None = None) -> Completion:
    """Give back what was reserved but not sent: `sentAmount` (debit side) stays spent, the receive side is kept
    in proportion, rounded down to the currency's minor unit."""
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        raise DomainError(errors.VALIDATION, f"reason is longer than {MAX_REASON_LENGTH} characters", ["reason"])
    return await _writer("abortTransfer", _abort_group).submit(
        _Work(note, actor, transfer_id, (transfer_id, sent_amount, reason)))


async def _abort_group(works: list[_Work]) -> list[Any]:
    return await _in_group("abortTransfer", works, _one_by_one(_abort))


async def _abort(conn: Any, transfer_id: str, sent_amount: str | None, reason: str | None, actor: str,
                 now: datetime) -> Completion:
    transfer = (await _lock_transfers(conn, [transfer_id])).get(transfer_id)
    if transfer is None:
        raise DomainError(errors.NOT_FOUND, f"no prepared transfer {transfer_id}", ["transferId"])
    if transfer.state == ABORTED:
        return Completion(transfer)
    if transfer.state == COMMITTED:
        raise DomainError(errors.INVALID_TRANSITION, f"transfer {transfer_id} was committed: it cannot be aborted",
                          ["transferId"])
    sent = 0
    if sent_amount is not None:
        sent = _part_of(sent_amount, transfer, "sentAmount", "amount", allow_zero=True)
    kept = kept_receive(transfer.amount, transfer.receive_amount, sent)
    try:
        await _finish(conn, transfer, {"state": ABORTED, "sent_amount": sent, "reason": reason,
                                       "finished_by": actor, "finished_at": now},
                      transfer_debit=sent, transfer_receive=kept, actor=actor, now=now)
    except DomainError as exc:
        raise Dirty(exc) from exc  # the transfer's update may have been written: only a rollback undoes it
    return Completion(transfer, RecordingResult([]))


def kept_receive(amount: int, receive_amount: int, sent: int) -> int:
    """The receive side of a partly sent transfer: in proportion to what was sent, rounded down."""
    return receive_amount * sent // amount


# PostgreSQL, under the grant's lock (taken by the previous statement, so this one's snapshot sees the latest
# rows): append a commit's or abort's row to the transfer's own period, continuing that period's and the grant's
# latest sums; answers whether those rows existed. $1 grant, $2 interval_index, $3 transfer_id, $4 state,
# $5 currency, $6/$7 interval start/end, $8/$9 transfer debit/receive, $10/$11 debit/receive change, $12 actor,
# $13 recorded_at.
_SPEND_PG = (
    "WITH t AS (SELECT total_debit, total_receive FROM grant_spent_amount WHERE grant_id = $1 "
    "ORDER BY id DESC LIMIT 1), "
    "i AS (SELECT interval_debit, interval_receive FROM grant_spent_amount WHERE grant_id = $1 "
    "AND interval_index = $2 ORDER BY id DESC LIMIT 1), "
    f"ins AS (INSERT INTO grant_spent_amount ({_SPENT_COLUMNS}) SELECT $1, $3, $4, $5, $2, $6, $7, $8, $9, $10, $11, "
    "CASE WHEN $2::bigint IS NULL THEN NULL ELSE COALESCE(i.interval_debit, 0) + $10::bigint END, "
    "CASE WHEN $2::bigint IS NULL THEN NULL ELSE COALESCE(i.interval_receive, 0) + $11::bigint END, "
    "COALESCE(t.total_debit, 0) + $10::bigint, COALESCE(t.total_receive, 0) + $11::bigint, $12, $13 "
    "FROM (SELECT 1 AS one) o LEFT JOIN t ON TRUE LEFT JOIN i ON TRUE) "
    "SELECT EXISTS (SELECT 1 FROM t) AS has_total, EXISTS (SELECT 1 FROM i) AS has_interval"
)


async def _finish(conn: Any, transfer: PreparedTransfer, changes: dict[str, Any], *, transfer_debit: int,
                  transfer_receive: int, actor: str, now: datetime) -> None:
    """Store a commit's or abort's `changes` of the locked transfer and append its spent-amount row.
    PostgreSQL: the update rides on the statement that locks the grant, the row's sums are read by the insert."""
    for name, value in changes.items():
        setattr(transfer, name, value)
    sql = _Sql(conn)
    if not sql.postgres:  # SQLite: one transaction at a time
        await _change_spending(conn, transfer, state=changes["state"], transfer_debit=transfer_debit,
                               transfer_receive=transfer_receive, actor=actor, now=now)
        await transfer.save(using_db=conn, update_fields=list(changes))
        return
    update = (f"UPDATE prepared_transfer SET {', '.join(f'{name} = ${n}' for n, name in enumerate(changes, 2))} "
              "WHERE id = $1")
    values = [transfer.id, *changes.values()]
    grant_id = transfer.grant_id  # type: ignore[attr-defined]
    if grant_id is None:
        await conn.execute_query(update, values)
        return
    n = len(values) + 1
    rows = await sql.rows(f"WITH u AS ({update}) SELECT id, limit_kind FROM payment_grant WHERE id = ${n} "
                          "FOR NO KEY UPDATE", [*values, grant_id])
    if not rows:
        raise DomainError(errors.NOT_FOUND, f"no grant {grant_id}", ["grantId"])
    if rows[0]["limit_kind"] is None:
        return
    found = (await sql.rows(_SPEND_PG, [
        grant_id, transfer.interval_index, transfer.transfer_id, changes["state"], transfer.currency,
        transfer.interval_start, transfer.interval_end, transfer_debit, transfer_receive,
        transfer_debit - transfer.amount, transfer_receive - transfer.receive_amount, actor, now,
    ]))[0]
    grant = Grant(id=grant_id, limit_kind=rows[0]["limit_kind"])
    _note_missing(grant, transfer, Sums(has_total=bool(found["has_total"]), has_interval=bool(found["has_interval"])))


async def _change_spending(conn: Any, transfer: PreparedTransfer, *, state: str, transfer_debit: int,
                           transfer_receive: int, actor: str, now: datetime) -> None:
    """Append the row of a commit or abort to the transfer's own period (not the current one)."""
    grant_id = transfer.grant_id  # type: ignore[attr-defined]
    if grant_id is None:
        return
    grant = await _lock_grant(conn, grant_id)
    if grant.limit_kind is None:
        return
    sums = await latest_sums(conn, grant.id, transfer.interval_index)
    _note_missing(grant, transfer, sums)
    await _append(conn, grant, transfer, sums, state=state, transfer_debit=transfer_debit,
                  transfer_receive=transfer_receive, debit_change=transfer_debit - transfer.amount,
                  receive_change=transfer_receive - transfer.receive_amount, actor=actor, now=now)


async def find_prepared(transfer_id: str) -> PreparedTransfer | None:
    return await PreparedTransfer.get_or_none(transfer_id=transfer_id)


# -- reconciliation --------------------------------------------------------------------------------------

MISMATCH = "MISMATCH"
MISSING = "MISSING"


@dataclass(frozen=True)
class Issue:
    kind: str  # MISMATCH | MISSING
    subject: str  # "transfer t-1", "period 3", "grant total", "record 17"
    field: str
    expected: int | None
    recorded: int | None
    transfer_id: str | None = None
    interval_index: int | None = None


@dataclass
class Reconciliation:
    grant_id: int
    currency: str | None
    checked_transfers: int = 0
    checked_records: int = 0
    issues: list[Issue] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.issues


def contribution(transfer: PreparedTransfer) -> tuple[int, int]:
    """What a transfer counts against its grant now, from its own history: (debit, receive)."""
    if transfer.state == COMMITTED:
        delivered = transfer.delivered_amount if transfer.delivered_amount is not None else transfer.receive_amount
        return transfer.amount, delivered
    if transfer.state == ABORTED:
        sent = transfer.sent_amount or 0
        return sent, kept_receive(transfer.amount, transfer.receive_amount, sent)
    return transfer.amount, transfer.receive_amount


async def reconcile_grant(grant_id: str | int) -> Reconciliation:
    """Recompute a grant's spent amounts from its transfers and compare them with the recorded rows. Every
    difference is logged and counted in settlegraph_grant_spent_amount_issues_total; nothing is repaired."""
    grant = await find_grant(grant_id)
    if grant is None:
        raise DomainError(errors.NOT_FOUND, f"no grant {grant_id}", ["id"])
    report = Reconciliation(grant.id, grant.currency)
    if grant.limit_kind is None:
        return report  # nothing is tracked for a grant without limit
    transfers = await PreparedTransfer.filter(grant_id=grant.id).order_by("id")
    records = await GrantSpentAmount.filter(grant_id=grant.id).order_by("id")
    report.checked_transfers, report.checked_records = len(transfers), len(records)
    issues = report.issues

    # 1. Each transfer's latest row must agree with the transfer's own state and amounts.
    latest_of: dict[str, GrantSpentAmount] = {}
    for record in records:
        latest_of[record.transfer_id] = record
    expected_total = [0, 0]
    expected_period: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for transfer in transfers:
        debit, receive = contribution(transfer)
        expected_total[0] += debit
        expected_total[1] += receive
        if transfer.interval_index is not None:
            expected_period[transfer.interval_index][0] += debit
            expected_period[transfer.interval_index][1] += receive
        subject = f"transfer {transfer.transfer_id}"
        if transfer.transfer_id not in latest_of:
            issues.append(Issue(MISSING, subject, "record", None, None, transfer.transfer_id, transfer.interval_index))
            continue
        last = latest_of.pop(transfer.transfer_id)
        for name, want, have in (("transferDebit", debit, last.transfer_debit),
                                 ("transferReceive", receive, last.transfer_receive),
                                 ("intervalIndex", transfer.interval_index, last.interval_index)):
            if want != have:
                issues.append(Issue(MISMATCH, subject, name, want, have, transfer.transfer_id,
                                    transfer.interval_index))
        if last.state != transfer.state:
            issues.append(Issue(MISMATCH, subject, f"state {transfer.state} recorded as {last.state}", None, None,
                                transfer.transfer_id, transfer.interval_index))
    for transfer_id, orphan in latest_of.items():
        issues.append(Issue(MISMATCH, f"record {orphan.id}", "transfer unknown to the grant", None, None,
                            transfer_id, orphan.interval_index))

    # 2. The running sums of every row must continue the previous row of the grant and of its period.
    total = [0, 0]
    period_sums: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for record in records:
        total[0] += record.debit_change
        total[1] += record.receive_change
        subject = f"record {record.id}"
        for name, want, have in (("totalDebit", total[0], record.total_debit),
                                 ("totalReceive", total[1], record.total_receive)):
            if want != have:
                issues.append(Issue(MISMATCH, subject, name, want, have, record.transfer_id, record.interval_index))
                total = [record.total_debit, record.total_receive]  # report each break once, then follow it
        if record.interval_index is not None:
            sums = period_sums[record.interval_index]
            sums[0] += record.debit_change
            sums[1] += record.receive_change
            for name, want, have in (("intervalDebit", sums[0], record.interval_debit),
                                     ("intervalReceive", sums[1], record.interval_receive)):
                if want != have:
                    issues.append(Issue(MISMATCH, subject, name, want, have, record.transfer_id,
                                        record.interval_index))
                    sums[0], sums[1] = record.interval_debit or 0, record.interval_receive or 0

    # 3. The latest sums must equal what the transfers add up to, overall and per period.
    recorded_total = [records[-1].total_debit, records[-1].total_receive] if records else [0, 0]
    for name, want, have in (("totalDebit", expected_total[0], recorded_total[0]),
                             ("totalReceive", expected_total[1], recorded_total[1])):
        if want != have:
            issues.append(Issue(MISMATCH, "grant total", name, want, have))
    latest_period: dict[int, GrantSpentAmount] = {}
    for record in records:
        if record.interval_index is not None:
            latest_period[record.interval_index] = record
    for index in sorted(set(expected_period) | set(latest_period)):
        want_debit, want_receive = expected_period.get(index, [0, 0])
        newest = latest_period.get(index)
        have_debit = newest.interval_debit if newest else None
        have_receive = newest.interval_receive if newest else None
        for name, want, have in (("intervalDebit", want_debit, have_debit),
                                 ("intervalReceive", want_receive, have_receive)):
            if have is None:
                if want:
                    issues.append(Issue(MISSING, f"period {index}", name, want, None, interval_index=index))
            elif want != have:
                issues.append(Issue(MISMATCH, f"period {index}", name, want, have, interval_index=index))

    for issue in issues:
        metrics.GRANT_SPENT_AMOUNT_ISSUES.labels(kind=issue.kind.lower()).inc()
        log.error("grant spent amounts disagree with transfer history", extra={
            "grant_id": grant.id, "kind": issue.kind, "subject": issue.subject, "field": issue.field,
            "expected": issue.expected, "recorded": issue.recorded,
        })
    return report


async def limited_grant_ids() -> list[int]:
    ids = await Grant.filter(limit_kind__isnull=False).order_by("id").values_list("id", flat=True)
    return [int(i) for i in ids]  # type: ignore[call-overload]
