"""Participant positions per currency (SPEC §2, §7): nets from the live batch accounts, the settlement
balance from the ledger's SETTLEMENT accounts."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from tortoise.connection import get_connection

from app.db.columns import fits
from app.db.dialect import Sql, dialect_of
from app.matrices import ledger
from models.settlement import Participant


@dataclass(frozen=True)
class Position:
    currency: str
    unsettled_net: int
    settled_net: int
    settlement_balance: int


async def positions(participant_ids: Sequence[str] | None) -> dict[str, list[Position]]:
    """Known participants (all, or those asked for) with one position per currency they have moved."""
    query = Participant.all() if participant_ids is None else Participant.filter(
        id__in=[p for p in participant_ids if fits(Participant, "id", p)])
    known: list[str] = [str(pid) for pid in await query.values_list("id", flat=True)]
    if not known:
        return {}
    conn = get_connection("default")
    q = Sql(dialect_of(conn))
    # Every participant: no list of ids (thousands would exceed what one SQLite statement binds).
    chosen = None if participant_ids is None else known
    # (The rollup's rows of participant '' carry batch counts.)
    where = "WHERE participant_id <> '' " if chosen is None else f"WHERE participant_id IN ({q.in_list(chosen)}) "
    # From the hourly rollup (batch_bucket_total), kept in step with every batch account in the same
    # transactions: a few rows per participant and hour instead of one per batch.
    rows = await conn.execute_query_dict(
        "SELECT participant_id, currency, "
        "SUM(CASE WHEN status <> 'SETTLED' THEN credit - debit ELSE 0 END) AS unsettled, "
        "SUM(CASE WHEN status = 'SETTLED' THEN credit - debit ELSE 0 END) AS settled "
        f"FROM batch_bucket_total {where}"
        "GROUP BY participant_id, currency ORDER BY participant_id, currency",
        q.values,
    )
    balances = await ledger.settlement_balances(chosen)
    out: dict[str, list[Position]] = {pid: [] for pid in known}
    grouped: dict[str, list[Position]] = defaultdict(list)
    for r in rows:
        balance = balances.get((r["participant_id"], r["currency"]), 0)
        grouped[r["participant_id"]].append(Position(r["currency"], int(r["unsettled"]), int(r["settled"]), balance))
    out.update(grouped)
    return out

