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


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
