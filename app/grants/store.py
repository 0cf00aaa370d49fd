"""Every SQL statement of payment grants (SPEC §9): one interface, one implementation per dialect.

The stores read and write; they decide nothing (the rules are in app/grants/rules.py). Statements both dialects
share are written once with app/db/dialect.py's placeholders; the dialects differ in locking and in how many
round trips a step takes:
- PostgreSQL locks rows (FOR NO KEY UPDATE: exclusive among spenders, yet no wait for inserts that merely
  reference the row), always in id order, and joins writes to reads in one statement where it can.
- SQLite needs no lock: Tortoise's single SQLite connection runs one transaction at a time.

In READ COMMITTED a statement sees the rows committed before it started, even if it then waited for a lock: the
latest sums of a grant are therefore read by a statement that starts after the grant's lock is held (the lock
is taken by an earlier statement: `lock_grants`).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.batches.store import MODEL_COLUMNS
from app.db.dialect import POSTGRES, SQLITE, SQLITE_CHUNK, Sql, Store, chunks
from app.grants.rules import GrantTerms, SpentChange, Sums
from models.grants import PreparedTransfer

_GRANT_COLUMNS = 'id, payer_id, payee_id, limit_kind, limit_amount, currency, "interval"'
_PREPARED_COLUMNS = ("transfer_id, grant_id, payer_id, payee_id, currency, amount, receive_amount, settlement_model, "
                     "attributes, prepared_at, interval_index, interval_start, interval_end, state, prepared_by")
_SPENT_COLUMNS = ("grant_id, transfer_id, state, currency, interval_index, interval_start, interval_end, "
                  "transfer_debit, transfer_receive, debit_change, receive_change, interval_debit, interval_receive, "
                  "total_debit, total_receive, actor, recorded_at")
_MODEL_NULLS = ", ".join(["NULL"] * len(MODEL_COLUMNS.split(",")))
_TOTAL, _INTERVAL, _RECORDED, _PREPARED = 0, 1, 2, 3  # the scopes of a lookup's rows
# Grants per read of latest sums: each takes up to three variables and two terms of the compound SELECT.
_SUMS_CHUNK = SQLITE_CHUNK // 4


@dataclass(frozen=True)
class PrepareLookup:
    """What one prepare reads: the settlement models, the latest sums of its grant (and period), and whether
    its transfer id is taken."""

    models: list[dict[str, Any]]
    sums: Sums
    prepared: bool  # the transfer id is already prepared
    recorded: bool  # the transfer id is already recorded as a cleared transfer


def _latest(q: Sql, grant_id: int, interval_index: int | None, lead: str) -> list[str]:
    """SELECTs of the grant's latest total and, with `interval_index`, that period's latest sums, as rows
    (`lead` columns, scope, debit, receive)."""
    parts = [f"SELECT {lead}{_TOTAL} AS scope, total_debit AS debit, total_receive AS receive FROM "
             "(SELECT total_debit, total_receive FROM grant_spent_amount "
             f"WHERE grant_id = {q.p(grant_id)} ORDER BY id DESC LIMIT 1) t"]
    if interval_index is not None:
        parts.append(f"SELECT {lead}{_INTERVAL}, interval_debit, interval_receive FROM "
                     "(SELECT interval_debit, interval_receive FROM grant_spent_amount "
                     f"WHERE grant_id = {q.p(grant_id)} AND interval_index = {q.p(interval_index)} "
                     "ORDER BY id DESC LIMIT 1) i")
    return parts


def _sums(rows: Sequence[dict[str, Any]]) -> Sums:
    found: dict[str, Any] = {}
    for row in rows:
        if row["scope"] == _TOTAL:
            found.update(total_debit=int(row["debit"]), total_receive=int(row["receive"]), has_total=True)
        elif row["scope"] == _INTERVAL:
            found.update(interval_debit=int(row["debit"]), interval_receive=int(row["receive"]), has_interval=True)
    return Sums(**found)


def _terms(row: dict[str, Any]) -> GrantTerms:
    limit = row["limit_amount"]
    return GrantTerms(int(row["id"]), row["payer_id"], row["payee_id"], row["limit_kind"],
                      int(limit) if limit is not None else None, row["currency"], row["interval"])


class GrantStore(Store):
    """The statements of grants, in the transaction of `conn`."""

    # -- implemented per dialect -------------------------------------------------------------
    async def lock_grants(self, grant_ids: Sequence[int]) -> dict[int, GrantTerms]:
        """The grants, locked in id order until the transaction ends."""
        raise NotImplementedError

    async def lock_transfers(self, transfer_ids: Sequence[str]) -> dict[str, PreparedTransfer]:
        """The prepared transfers, locked in id order until the transaction ends."""
        raise NotImplementedError

    # -- shared, a dialect may do them in fewer statements ---------------------------------------
    async def prepare_lookup(self, transfer_id: str, grant_id: int | None, interval_index: int | None) -> PrepareLookup:
        """One round trip: the settlement models, the grant's latest sums (the caller holds its lock; None: no
        limited grant) and whether the transfer id is taken."""
        q = self.sql()
        parts = [f"SELECT {MODEL_COLUMNS}, NULL AS scope, NULL AS debit, NULL AS receive FROM settlement_model"]
        if grant_id is not None:
            parts += _latest(q, grant_id, interval_index, f"{_MODEL_NULLS}, ")
        parts.append(f"SELECT {_MODEL_NULLS}, {_RECORDED}, 0, 0 FROM transfer WHERE transfer_id = {q.p(transfer_id)}")
        parts.append(f"SELECT {_MODEL_NULLS}, {_PREPARED}, 0, 0 FROM prepared_transfer "
                     f"WHERE transfer_id = {q.p(transfer_id)}")
        rows = await self.rows(" UNION ALL ".join(parts), q.values)
        scopes = {row["scope"] for row in rows}
        return PrepareLookup([r for r in rows if r["scope"] is None], _sums(rows), _PREPARED in scopes,
                             _RECORDED in scopes)

    async def latest_sums(self, keys: Sequence[tuple[int, int | None]]) -> list[Sums]:
        """The latest sums of each (grant id, period index or None), in order; few round trips for many."""
        found: list[Sums] = []
        for chunk in chunks(list(keys), _SUMS_CHUNK):
            q = self.sql()
            parts = [p for k, (grant_id, index) in enumerate(chunk) for p in _latest(q, grant_id, index, f"{k} AS k, ")]
            rows = await self.rows(" UNION ALL ".join(parts), q.values)
            for k in range(len(chunk)):
                found.append(_sums([r for r in rows if r["k"] == k]))
        return found

    async def reserve(self, transfer: PreparedTransfer, change: SpentChange | None, actor: str,
                      now: datetime) -> int:
        """Insert the prepared transfer and, under a limit, its spent-amount row; answers the transfer's id."""
        q = self.sql()
        rows = await self.rows(_insert_prepared(q, transfer) + " RETURNING id", q.values)
        if change is not None:
            await self.append(change, actor, now)
        return int(rows[0]["id"])

    async def finish(self, transfer_pk: int, changes: dict[str, Any], grant_id: int | None = None,
                     interval_index: int | None = None) -> Sums:
        """Store a commit's or abort's `changes` of the (locked) transfer; with `grant_id` (whose lock the caller
        holds), answer that grant's latest sums and those of period `interval_index`."""
        q = self.sql()
        await self.execute(_update(q, transfer_pk, changes), q.values)
        if grant_id is None:
            return Sums()
        q = self.sql()
        return _sums(await self.rows(" UNION ALL ".join(_latest(q, grant_id, interval_index, "")), q.values))

    async def append(self, change: SpentChange, actor: str, now: datetime) -> None:
        q = self.sql()
        await self.execute(_insert_spent(q, change, actor, now), q.values)


def _insert_prepared(q: Sql, t: PreparedTransfer) -> str:
    values = [t.transfer_id, t.grant_id, t.payer_id, t.payee_id, t.currency,  # type: ignore[attr-defined]
              t.amount, t.receive_amount, t.settlement_model]
    tail = [t.prepared_at, t.interval_index, t.interval_start, t.interval_end, t.state, t.prepared_by]
    marks = [*(q.p(v) for v in values), q.json(json.dumps(t.attributes, separators=(",", ":"))),
             *(q.p(v) for v in tail)]
    return f"INSERT INTO prepared_transfer ({_PREPARED_COLUMNS}) VALUES ({', '.join(marks)})"


def _insert_spent(q: Sql, c: SpentChange, actor: str, now: datetime) -> str:
    period = c.period
    values = [c.grant_id, c.transfer_id, c.state, c.currency, period.index if period else None,
              period.start if period else None, period.end if period else None, c.transfer_debit, c.transfer_receive,
              c.debit_change, c.receive_change, c.interval_debit, c.interval_receive, c.total_debit, c.total_receive,
              actor, now]
    return f"INSERT INTO grant_spent_amount ({_SPENT_COLUMNS}) VALUES ({q.in_list(values)})"


def _update(q: Sql, transfer_pk: int, changes: dict[str, Any]) -> str:
    settings = ", ".join(f"{name} = {q.p(value)}" for name, value in changes.items())
    return f"UPDATE prepared_transfer SET {settings} WHERE id = {q.p(transfer_pk)}"


class PostgresGrantStore(GrantStore, dialect=POSTGRES):
    async def lock_grants(self, grant_ids: Sequence[int]) -> dict[int, GrantTerms]:
        if not grant_ids:
            return {}
        rows = await self.rows(f"SELECT {_GRANT_COLUMNS} FROM payment_grant WHERE id = ANY($1::bigint[]) "
                               "ORDER BY id FOR NO KEY UPDATE", [sorted(set(grant_ids))])
        return {int(r["id"]): _terms(r) for r in rows}

    async def lock_transfers(self, transfer_ids: Sequence[str]) -> dict[str, PreparedTransfer]:
        rows = await self.rows("SELECT * FROM prepared_transfer WHERE transfer_id = ANY($1::text[]) ORDER BY id "
                               "FOR NO KEY UPDATE", [list(transfer_ids)])
        return {r["transfer_id"]: PreparedTransfer._init_from_db(**r) for r in rows}

    async def reserve(self, transfer: PreparedTransfer, change: SpentChange | None, actor: str,
                      now: datetime) -> int:
        # One statement: the transfer and its spent-amount row.
        q = self.sql()
        sql = _insert_prepared(q, transfer) + " RETURNING id"
        if change is not None:
            sql = f"WITH pt AS ({sql}), sp AS ({_insert_spent(q, change, actor, now)}) SELECT id FROM pt"
        return int((await self.rows(sql, q.values))[0]["id"])

    async def finish(self, transfer_pk: int, changes: dict[str, Any], grant_id: int | None = None,
                     interval_index: int | None = None) -> Sums:
        # One statement: the update rides on the read of the sums (a data-modifying WITH runs unreferenced).
        if grant_id is None:
            return await super().finish(transfer_pk, changes)
        q = self.sql()
        update = _update(q, transfer_pk, changes)
        reads = " UNION ALL ".join(_latest(q, grant_id, interval_index, ""))
        return _sums(await self.rows(f"WITH u AS ({update}) {reads}", q.values))


class SqliteGrantStore(GrantStore, dialect=SQLITE):
    async def lock_grants(self, grant_ids: Sequence[int]) -> dict[int, GrantTerms]:
        found: dict[int, GrantTerms] = {}
        for chunk in chunks(sorted(set(grant_ids))):
            marks = ", ".join("?" * len(chunk))
            for row in await self.rows(f"SELECT {_GRANT_COLUMNS} FROM payment_grant WHERE id IN ({marks})", chunk):
                found[int(row["id"])] = _terms(row)
        return found

    async def lock_transfers(self, transfer_ids: Sequence[str]) -> dict[str, PreparedTransfer]:
        found: dict[str, PreparedTransfer] = {}
        for chunk in chunks(list(transfer_ids)):
            marks = ", ".join("?" * len(chunk))
            for r in await self.rows(f"SELECT * FROM prepared_transfer WHERE transfer_id IN ({marks})", chunk):
                found[r["transfer_id"]] = PreparedTransfer._init_from_db(**r)
        return found
