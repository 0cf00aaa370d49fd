"""Which batches a matrix holds, and which matrices hold a batch (SPEC §6): by criteria while a DYNAMIC matrix is
OPEN (batches created later join it), listed otherwise."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from tortoise.expressions import Q, RawSQL, Subquery
from tortoise.queryset import QuerySet

from app.batches.status import BatchStatus
from app.matrices.rules import MatrixStatus, MatrixType, contains, is_live, split_set
from app.matrices.store import IN_ANY_MATRIX_SQL
from models.matrices import MatrixBatch, SettlementMatrix
from models.settlement import Batch


def member_query(matrix: SettlementMatrix) -> QuerySet[Batch]:
    """The matrix's batches as a query (for pages of batches)."""
    if is_live(matrix):
        return _criteria(matrix)
    listed = Q(id__in=Subquery(MatrixBatch.filter(matrix_id=matrix.id).values("batch_id")))
    if matrix.type == MatrixType.STATIC:
        return Batch.filter(listed)  # every member is listed, the ones it locked included
    # A frozen DYNAMIC matrix: the members it locked (or settled) by their owner, within its period; the rest listed
    # (the same set as app/matrices/store.members_where).
    return _criteria(matrix, statuses=False).filter(Q(owner_matrix_id=matrix.id) | listed)


def _criteria(matrix: SettlementMatrix, statuses: bool = True) -> QuerySet[Batch]:
    query = Batch.filter(model_id=matrix.model_id, window_start__gte=matrix.period_start,  # type: ignore[attr-defined]
                         window_start__lt=matrix.period_end)
    currencies = split_set(matrix.currencies)
    wanted = split_set(matrix.batch_statuses) if statuses else []
    if currencies:
        query = query.filter(currency__in=currencies)
    if matrix.segment_key is not None:
        query = query.filter(segment_key=matrix.segment_key)
    if wanted:
        query = query.filter(status__in=wanted)
    return query


async def settled_batches(matrix: SettlementMatrix) -> list[Batch]:
    """The batches the matrix settled, in id order."""
    return await member_query(matrix).filter(owner_matrix_id=matrix.id,
                                             status=BatchStatus.SETTLED).order_by("id")


def in_any_matrix(query: QuerySet[Batch], wanted: bool | None) -> QuerySet[Batch]:
    """BatchFilter.inAnyMatrix: the batches some matrix holds (or, False, those no matrix holds)."""
    if wanted is None:
        return query
    return query.annotate(in_any_matrix=RawSQL(IN_ANY_MATRIX_SQL)).filter(in_any_matrix=1 if wanted else 0)


async def matrices_containing(batch_ids: Sequence[int]) -> dict[int, list[SettlementMatrix]]:
    """batch id -> the matrices that hold it now (listed, or matching a live DYNAMIC matrix's criteria).

    The hook for live events: which matrices' totals moved when these batches changed."""
    ids = sorted(set(batch_ids))
    found: dict[int, list[SettlementMatrix]] = {i: [] for i in ids}
    if not ids:
        return found
    batches = await Batch.filter(id__in=ids)
    listed: dict[int, set[int]] = defaultdict(set)
    for link in await MatrixBatch.filter(batch_id__in=ids).values("matrix_id", "batch_id"):
        listed[link["matrix_id"]].add(link["batch_id"])
    model_ids = {b.model_id for b in batches}  # type: ignore[attr-defined]
    frozen = set(listed) | {b.owner_matrix_id for b in batches if b.owner_matrix_id is not None}
    candidates = await SettlementMatrix.filter(id__in=list(frozen)) if frozen else []
    live = await SettlementMatrix.filter(type=MatrixType.DYNAMIC, status=MatrixStatus.OPEN,
                                         model_id__in=list(model_ids))
    for matrix in {m.id: m for m in [*candidates, *live]}.values():
        for batch in batches:
            if contains(matrix, listed.get(matrix.id, set()), batch):
                found[batch.id].append(matrix)
    for items in found.values():
        items.sort(key=lambda m: m.id)
    return found


async def left_by_status(matrix: SettlementMatrix, batch_ids: Sequence[int]) -> bool:
    """Whether any of these batches just left the live DYNAMIC matrix because of its new status (its criteria
    without their batch statuses still hold it)."""
    if not is_live(matrix) or not matrix.batch_statuses or not batch_ids:
        return False
    return any(contains(matrix, set(), batch, any_status=True) for batch in await Batch.filter(id__in=list(batch_ids)))
