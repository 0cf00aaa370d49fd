"""The settlement ledger (SPEC §7): double-entry journal entries from POSITION to SETTLEMENT.

Signs: a participant's net is credit - debit (positive: the hub owes it). Settling moves the net out of
the participant's POSITION account into its SETTLEMENT account, so the SETTLEMENT balance
(credits - debits) moves by each settled net with the same sign. Every entry's debits equal its credits.
"""
from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tortoise.connection import get_connection

from app.batches.rollup import AccountTotal
from app.db.dialect import Sql, dialect_of
from models.matrices import JournalEntry, JournalLine


class Account(enum.StrEnum):
    POSITION = "POSITION"
    SETTLEMENT = "SETTLEMENT"


@dataclass(frozen=True)
class Line:
    account: Account
    debit: int
    credit: int


def settlement_lines(net: int) -> list[Line]:
    """The balanced lines that move `net` from POSITION to SETTLEMENT (empty for a zero net)."""
    if net > 0:  # the hub owes the participant: its position gives the amount up to its settlement account
        return [Line(Account.POSITION, net, 0), Line(Account.SETTLEMENT, 0, net)]
    if net < 0:
        return [Line(Account.POSITION, 0, -net), Line(Account.SETTLEMENT, -net, 0)]
    return []


async def post_settlement(settlement_id: int, matrix_id: int, totals: Sequence[AccountTotal],
                          at: datetime) -> int:
    """One journal entry per participant and currency with a non-zero net; returns how many were posted.
    Runs in the caller's transaction (Tortoise routes the ORM calls through it)."""
    posted = 0
    for total in totals:
        lines = settlement_lines(total.net)
        if not lines:
            continue
        entry = await JournalEntry.create(
            settlement_id=settlement_id, participant_id=total.participant_id, currency=total.currency,
            description=f"settlement of matrix {matrix_id}", at=at,
        )
        await JournalLine.bulk_create([
            JournalLine(entry_id=entry.id, account=line.account.value, participant_id=total.participant_id,
                        currency=total.currency, debit=line.debit, credit=line.credit)
            for line in lines
        ])
        posted += 1
    return posted


async def settlement_balances(participant_ids: Sequence[str] | None) -> dict[tuple[str, str], int]:
    """(participant, currency) -> SETTLEMENT account balance (credits - debits), of these participants or (None)
    of all."""
    if participant_ids is not None and not participant_ids:
        return {}
    conn = get_connection("default")
    q = Sql(dialect_of(conn))
    chosen = "" if participant_ids is None else f"AND participant_id IN ({q.in_list(participant_ids)}) "
    rows = await conn.execute_query_dict(
        "SELECT participant_id, currency, SUM(credit) - SUM(debit) AS balance FROM journal_line "
        f"WHERE account = {q.p(Account.SETTLEMENT.value)} {chosen}GROUP BY participant_id, currency",
        q.values,
    )
    return {(r["participant_id"], r["currency"]): int(r["balance"]) for r in rows}
