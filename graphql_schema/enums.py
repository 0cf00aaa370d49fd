"""The domain's enums, defined once in app/ and exposed to GraphQL here (strawberry.enum registers the class
itself, so app/ and the API layer share one definition)."""
from __future__ import annotations

import strawberry

from app.batches.recording import TransferOutcome
from app.batches.status import BatchStatus
from app.matrices.periods import TimeUnit
from app.matrices.rules import MatrixStatus, MatrixType

__all__ = ["BatchStatus", "MatrixStatus", "MatrixType", "TimeUnit", "TransferOutcome"]

for _enum in (BatchStatus, TransferOutcome, TimeUnit, MatrixType, MatrixStatus):
    strawberry.enum(_enum)
