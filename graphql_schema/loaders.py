"""DataLoaders, one per relation, built fresh for every request (and every subscription event)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import cached_property

from strawberry.dataloader import DataLoader

from app.batches.lifecycle import histories
from app.batches.status import StatusChange
from app.grants.grants import GrantSpending, spent_of
from app.matrices import membership, reports
from app.matrices.totals import MatrixTotals
from models.matrices import Settlement, SettlementMatrix
from models.settlement import Batch, BatchAccount, SettlementModel


async def _batches(ids: Sequence[int]) -> list[Batch | None]:
    found = {b.id: b for b in await Batch.filter(id__in=list(ids))}
    return [found.get(i) for i in ids]


async def _models(ids: Sequence[int]) -> list[SettlementModel | None]:
    found = {m.id: m for m in await SettlementModel.filter(id__in=list(ids))}
    return [found.get(i) for i in ids]


async def _accounts(batch_ids: Sequence[int]) -> list[list[BatchAccount]]:
    grouped: dict[int, list[BatchAccount]] = defaultdict(list)
    for account in await BatchAccount.filter(batch_id__in=list(batch_ids)).order_by("participant_id"):
        grouped[account.batch_id].append(account)  # type: ignore[attr-defined]
    return [grouped.get(i, []) for i in batch_ids]


async def _history(batch_ids: Sequence[int]) -> list[list[StatusChange]]:
    grouped = await histories(batch_ids)
    return [grouped.get(i, []) for i in batch_ids]


async def _matrices(ids: Sequence[int]) -> list[SettlementMatrix | None]:
    found = {m.id: m for m in await SettlementMatrix.filter(id__in=list(ids))}
    return [found.get(i) for i in ids]


async def _matrix_totals(rows: Sequence[SettlementMatrix]) -> list[MatrixTotals]:
    return [await reports.totals(row) for row in rows]  # one summing read per matrix


async def _batch_matrices(batch_ids: Sequence[int]) -> list[list[SettlementMatrix]]:
    found = await membership.matrices_containing(batch_ids)
    return [found.get(i, []) for i in batch_ids]


async def _grant_spent(grant_ids: Sequence[int]) -> list[GrantSpending | None]:
    return await spent_of(grant_ids)


async def _settlements(matrix_ids: Sequence[int]) -> list[Settlement | None]:
    found = {s.matrix_id: s for s in await Settlement.filter(matrix_id__in=list(matrix_ids))}  # type: ignore[attr-defined]
    return [found.get(i) for i in matrix_ids]


class Loaders:
    """Built on first use: most requests (every recordTransfers call) need none of them."""

    @cached_property
    def batch(self) -> DataLoader[int, Batch | None]:
        return DataLoader(_batches)

    @cached_property
    def model(self) -> DataLoader[int, SettlementModel | None]:
        return DataLoader(_models)

    @cached_property
    def accounts(self) -> DataLoader[int, list[BatchAccount]]:
        return DataLoader(_accounts)

    @cached_property
    def history(self) -> DataLoader[int, list[StatusChange]]:
        return DataLoader(_history)

    @cached_property
    def matrix(self) -> DataLoader[int, SettlementMatrix | None]:
        return DataLoader(_matrices)

    @cached_property
    def matrix_totals(self) -> DataLoader[SettlementMatrix, MatrixTotals]:
        return DataLoader(_matrix_totals, cache_key_fn=lambda row: (row.id, row.status, row.version))

    @cached_property
    def batch_matrices(self) -> DataLoader[int, list[SettlementMatrix]]:
        return DataLoader(_batch_matrices)

    @cached_property
    def settlement(self) -> DataLoader[int, Settlement | None]:
        return DataLoader(_settlements)

    @cached_property
    def grant_spent(self) -> DataLoader[int, GrantSpending | None]:
        """Grants by id with what each has spent now (SPEC §9): two reads for all the grants of a request."""
        return DataLoader(_grant_spent)
