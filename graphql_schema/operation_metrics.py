"""settlegraph_graphql_operation_seconds at /metrics: how long each query and mutation took, by type."""
from __future__ import annotations

import time
from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from app.core import metrics


class OperationMetrics(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        try:
            kind = self.execution_context.operation_type.value
        except Exception:  # a document that did not parse has no operation type
            kind = "invalid"
        metrics.GRAPHQL_OPERATIONS.labels(operation_type=kind).observe(time.perf_counter() - started)
