"""Prometheus metrics, served as text at /metrics."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

TRANSFERS = Counter("settlegraph_transfers_total", "Transfers handled by recordTransfers", ["outcome"])
GRAPHQL_OPERATIONS = Histogram(
    "settlegraph_graphql_operation_seconds", "GraphQL operation duration", ["operation_type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
