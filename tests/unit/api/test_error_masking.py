"""Unexpected exceptions reach clients as INTERNAL with an id, never a stack trace."""
import strawberry

from app.core.errors import DomainError
from graphql_schema.errors import MaskInternalErrors


@strawberry.type
class Query:
    @strawberry.field
    def broken(self) -> int:
        raise RuntimeError("password=hunter2 in a stack trace")

    @strawberry.field
    def refused(self) -> int:
        raise DomainError("VALIDATION", "bad cursor")


schema = strawberry.Schema(query=Query, extensions=[MaskInternalErrors])


def test_unexpected_errors_are_masked_with_an_id():
    result = schema.execute_sync("{ broken }")
    error = result.errors[0]
    assert "hunter2" not in error.message and error.message.startswith("Internal error (id ")
    assert error.extensions["code"] == "INTERNAL" and len(error.extensions["errorId"]) == 12


def test_domain_errors_keep_their_code():
    result = schema.execute_sync("{ refused }")
    assert result.errors[0].message == "bad cursor" and result.errors[0].extensions == {"code": "VALIDATION"}
