"""Reading matrices and their settlement reports (SPEC §6, §7)."""
from __future__ import annotations

from tortoise.connection import get_connection

from app.batches.rollup import AccountTotal
from app.matrices import totals as live_totals
from app.matrices.totals import MatrixTotals
from models.matrices import SettlementMatrix, SettlementTotal


async def get(matrix_id: int) -> SettlementMatrix | None:
    return await SettlementMatrix.get_or_none(id=matrix_id)


async def totals(matrix: SettlementMatrix) -> MatrixTotals:
    return await live_totals.totals(get_connection("default"), matrix)


async def settlement_totals(settlement_id: int) -> list[AccountTotal]:
    rows = await SettlementTotal.filter(settlement_id=settlement_id).order_by("participant_id", "currency")
    return [AccountTotal(r.participant_id, r.currency, r.debit, r.credit) for r in rows]
