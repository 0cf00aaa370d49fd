"""GraphQL types of participants and their positions (SPEC §2, §7)."""
from __future__ import annotations

import strawberry

from app.participants import Position
from graphql_schema.scalars import Amount, amount


@strawberry.type
class ParticipantPosition:
    currency: str
    unsettled_net: Amount
    settled_net: Amount
    settlement_balance: Amount

    @classmethod
    def of(cls, position: Position) -> ParticipantPosition:
        return cls(
            currency=position.currency,
            unsettled_net=amount(position.unsettled_net, position.currency),
            settled_net=amount(position.settled_net, position.currency),
            settlement_balance=amount(position.settlement_balance, position.currency),
        )


@strawberry.type
class Participant:
    id: str
    positions: list[ParticipantPosition]
