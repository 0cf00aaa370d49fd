"""The one error type for user errors: a stable machine-readable code, a message, the input path."""
from __future__ import annotations

from collections.abc import Sequence


class DomainError(Exception):
    """A refusal the caller can act on. Raised by app/, rendered by graphql_schema/ as a UserError."""

    def __init__(self, code: str, message: str, field: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = list(field) if field else None

    def at(self, *prefix: str) -> DomainError:
        """The same error with its field path placed under an input prefix."""
        return DomainError(self.code, self.message, [*prefix, *(self.field or [])])

    def __repr__(self) -> str:
        return f"DomainError({self.code!r}, {self.message!r}, {self.field!r})"


# Stable codes, one place.
VALIDATION = "VALIDATION"
NOT_FOUND = "NOT_FOUND"
INVALID_TRANSITION = "INVALID_TRANSITION"
TRANSFER_CONFLICT = "TRANSFER_CONFLICT"
UNKNOWN_CURRENCY = "UNKNOWN_CURRENCY"
AMOUNT_SCALE = "AMOUNT_SCALE"
AMOUNT_NOT_POSITIVE = "AMOUNT_NOT_POSITIVE"
AMOUNT_OUT_OF_RANGE = "AMOUNT_OUT_OF_RANGE"
UNKNOWN_MODEL = "UNKNOWN_MODEL"
INACTIVE_MODEL = "INACTIVE_MODEL"
CURRENCY_NOT_ACCEPTED = "CURRENCY_NOT_ACCEPTED"
SAME_PARTICIPANT = "SAME_PARTICIPANT"
TOO_MANY_TRANSFERS = "TOO_MANY_TRANSFERS"
DUPLICATE_NAME = "DUPLICATE_NAME"
UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
INTERNAL = "INTERNAL"
# Requests (SPEC §11)
BAD_REQUEST = "BAD_REQUEST"
COST_LIMIT_EXCEEDED = "COST_LIMIT_EXCEEDED"

# Settlement periods (SPEC §6)
PERIOD_TOO_FINE = "PERIOD_TOO_FINE"
PERIOD_MISALIGNED = "PERIOD_MISALIGNED"
# Settlement matrices (SPEC §6)
MATRIX_CHANGED = "MATRIX_CHANGED"
EMPTY_MATRIX = "EMPTY_MATRIX"
FOUR_EYES = "FOUR_EYES"
# Payment grants (SPEC §9)
INVALID_INTERVAL = "INVALID_INTERVAL"
ONLY_ONE_GRANT_AMOUNT = "ONLY_ONE_GRANT_AMOUNT"
GRANT_LIMIT_EXCEEDED = "GRANT_LIMIT_EXCEEDED"
GRANT_PAYER_MISMATCH = "GRANT_PAYER_MISMATCH"
GRANT_PAYEE_MISMATCH = "GRANT_PAYEE_MISMATCH"
GRANT_CURRENCY_MISMATCH = "GRANT_CURRENCY_MISMATCH"
GRANT_NOT_ACTIVE = "GRANT_NOT_ACTIVE"  # the grant's interval has no period at the preparation time
AMOUNT_EXCEEDS_RESERVED = "AMOUNT_EXCEEDS_RESERVED"
