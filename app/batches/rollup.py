"""The hourly rollup of batch totals (batch_bucket_total): what live matrix reads sum (SPEC §6).

Batch totals rolled up per (model, currency, segment, hour bucket, batch status, participant), kept in step with
every batch account in the transactions that record transfers and change batch statuses (app/batches/store.py
writes it), so a matrix read sums a few rows per hour instead of every batch account. The rows with participant
'' carry the batch counts. Pure: the arithmetic of moving sums between statuses.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

BUCKET_SECONDS = 3600
# The epoch second of the hour a batch `b`'s window starts in (the rollup's bucket), on PostgreSQL.
PG_BUCKET = f"(EXTRACT(EPOCH FROM b.window_start)::bigint / {BUCKET_SECONDS} * {BUCKET_SECONDS})"
BUCKET_KEY = "model_id, currency, segment_key, bucket, status, participant_id"
BUCKET_UPSERT = (
    f"ON CONFLICT ({BUCKET_KEY}) DO UPDATE SET debit = batch_bucket_total.debit + excluded.debit, "
    "credit = batch_bucket_total.credit + excluded.credit, "
    "batch_count = batch_bucket_total.batch_count + excluded.batch_count, version = batch_bucket_total.version + 1"
)


@dataclass(frozen=True)
class AccountTotal:
    """A participant's sums in one currency over some batches."""

    participant_id: str
    currency: str
    debit: int
    credit: int

    @property
    def net(self) -> int:
        return self.credit - self.debit


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


def participant_totals(moves: Sequence[BucketMove]) -> list[AccountTotal]:
    """Per participant and currency, the sums of the moved batches."""
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for m in moves:
        if m.participant_id and (m.debit or m.credit):  # rollup rows emptied by earlier moves stay behind
            sums[(m.participant_id, m.currency)][0] += m.debit
            sums[(m.participant_id, m.currency)][1] += m.credit
    return [AccountTotal(p, c, d, k) for (p, c), (d, k) in sorted(sums.items())]


def move_rows(moves: Sequence[BucketMove], to_status: str) -> list[tuple[Any, ...]]:
    """The upserts that take the sums out of their old status rows and add them to the `to_status` rows, in key
    order (no deadlock between movers): (model, currency, segment, bucket, status, participant, debit, credit,
    batch count)."""
    deltas: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    for m in moves:
        if m.from_status == to_status:
            continue
        for status, sign in ((m.from_status, -1), (to_status, 1)):
            sums = deltas[(m.model_id, m.currency, m.segment_key, m.bucket, status, m.participant_id)]
            sums[0] += sign * m.debit
            sums[1] += sign * m.credit
            sums[2] += sign * m.batch_count
    return [(*key, *sums) for key, sums in sorted(deltas.items())]
