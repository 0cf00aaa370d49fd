"""GraphQL types of participants and their positions (SPEC §2, §7)."""
from __future__ import annotations

import strawberry

from app import money
from app.participants import Position
from graphql_schema.scalars import Amount


@strawberry.type
class ParticipantPosition:
    currency: str
    unsettled_net: Amount
    settled_net: Amount
    settlement_balance: Amount

    @classmethod
    def of(cls, position: Position) -> ParticipantPosition:
        fmt = money.format_minor
        return cls(
            currency=position.currency,
            unsettled_net=fmt(position.unsettled_net, position.currency),
            settled_net=fmt(position.settled_net, position.currency),
            settlement_balance=fmt(position.settlement_balance, position.currency),
        )


@strawberry.type
class Participant:
    id: str
    positions: list[ParticipantPosition]
