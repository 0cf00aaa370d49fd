"""Live matrix totals (SPEC §6): sums of a matrix's batches, computed on read, and the checksum of what it would
settle.

Nothing here is stored: every read sums the batches' live accounts (batch_account, updated in the transaction that
records a transfer) or, for the whole hours of an OPEN DYNAMIC matrix, the hourly rollup kept beside them
(app/batches/rollup.py). The settleable part and the checksum follow from the same rows, so they are right the
moment a transfer is recorded or a batch changes status.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.batches.rollup import BUCKET_SECONDS, AccountTotal
from app.matrices.rules import is_live, is_settleable
from app.matrices.store import AccountSums, BatchGroup, MatrixStore
from models.matrices import SettlementMatrix


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


def _epoch(value: datetime) -> int:
    return int(value.astimezone(UTC).timestamp())


def full_hours(start: datetime, end: datetime) -> tuple[int, int] | None:
    """The whole rollup buckets inside [start, end), as epoch seconds [lo, hi); None when there are none."""
    lo = -(-_epoch(start) // BUCKET_SECONDS) * BUCKET_SECONDS
    hi = _epoch(end) // BUCKET_SECONDS * BUCKET_SECONDS
    return (lo, hi) if lo < hi else None


def _from_rollup(rows: Sequence[dict[str, Any]]) -> tuple[list[AccountSums], list[BatchGroup]]:
    accounts: list[AccountSums] = []
    versions: dict[tuple[str, str], int] = defaultdict(int)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        key = (r["status"], r["currency"])
        versions[key] += int(r["version"])
        counts[key] += int(r["n"])
        if r["participant_id"] and (int(r["debit"]) or int(r["credit"])):  # rows emptied by status moves stay
            accounts.append(AccountSums(r["status"], False, r["participant_id"], r["currency"], int(r["debit"]),
                                       int(r["credit"])))
    batches = [BatchGroup(status, False, currency, count, f"v{versions[(status, currency)]}")
               for (status, currency), count in counts.items()]
    return accounts, batches


async def _rows(store: MatrixStore, matrix: SettlementMatrix) -> tuple[list[AccountSums], list[BatchGroup]]:
    if not is_live(matrix):
        return await store.account_rows(matrix)
    assert matrix.period_start is not None and matrix.period_end is not None
    hours = full_hours(matrix.period_start, matrix.period_end)
    if hours is None:
        return await store.account_rows(matrix)
    # An OPEN matrix owns no locks, so the rollup (which does not know owners) is exact for it.
    lo, hi = hours
    accounts, batches = _from_rollup(await store.rollup_rows(matrix, lo, hi))
    for edge_start, edge_end in ((matrix.period_start, datetime.fromtimestamp(lo, UTC)),
                                 (datetime.fromtimestamp(hi, UTC), matrix.period_end)):
        if edge_start < edge_end:
            more_accounts, more_batches = await store.account_rows(matrix, edge_start, edge_end)
            accounts += more_accounts
            batches += more_batches
    return accounts, batches


def summarise(matrix: SettlementMatrix, accounts: Sequence[AccountSums], batches: Sequence[BatchGroup]) -> MatrixTotals:
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
    store = MatrixStore.on(conn)
    accounts, batches = await _rows(store, matrix)
    return summarise(matrix, accounts, batches)
