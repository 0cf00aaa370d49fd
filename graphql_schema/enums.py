"""GraphQL enums shared across domains."""
from __future__ import annotations

import enum

import strawberry


@strawberry.enum
class BatchStatus(enum.Enum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    IN_DISPUTE = "IN_DISPUTE"
    AWAITING_SETTLEMENT = "AWAITING_SETTLEMENT"
    SETTLED = "SETTLED"


@strawberry.enum
class TransferOutcome(enum.Enum):
    RECORDED = "RECORDED"
    DUPLICATE = "DUPLICATE"
    REJECTED = "REJECTED"


@strawberry.enum
class TimeUnit(enum.Enum):
    SECOND = "SECOND"
    MINUTE = "MINUTE"
    HOUR = "HOUR"
    DAY = "DAY"
