"""Prometheus metrics, served as text at /metrics."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

TRANSFERS = Counter("settlegraph_transfers_total", "Transfers handled by recordTransfers", ["outcome"])
GRANT_SPENT_AMOUNT_ISSUES = Counter(
    "settlegraph_grant_spent_amount_issues_total",
    "Grant spent-amount records that disagree with transfer history (mismatch) or are missing (missing)",
    ["kind"],
)
for _kind in ("mismatch", "missing"):  # exported at zero from the start, so alerts see the series
    GRANT_SPENT_AMOUNT_ISSUES.labels(kind=_kind)
GRAPHQL_OPERATIONS = Histogram(
    "settlegraph_graphql_operation_seconds", "GraphQL operation duration", ["operation_type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

GROUP_SIZE = Histogram(
    "settlegraph_group_commit_size", "Writes sharing one transaction (app/group_commit.py), by kind", ["writer"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
GROUP_FALLBACKS = Counter(
    "settlegraph_group_commit_fallbacks_total",
    "Groups that failed as a whole and were written again one by one, by kind", ["writer"],
)


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
