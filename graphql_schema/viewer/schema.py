"""Who the caller is: a frontend (the operator console) offers only the actions the caller's roles allow."""
from __future__ import annotations

import strawberry

from app.auth import Role
from graphql_schema.context import Info
from graphql_schema.permissions import IsViewer


@strawberry.type(description="The authenticated caller, as the server identified it from the key or token.")
class Viewer:
    name: str
    roles: list[str] = strawberry.field(description="The roles held, sorted; ADMIN holds every other one.")
    participant_id: str | None = strawberry.field(description="The participant a PARTICIPANT caller reads.")


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[IsViewer])
    def viewer(self, info: Info) -> Viewer:
        principal = info.context.principal
        assert principal is not None  # IsViewer refused an anonymous caller
        return Viewer(name=principal.name, roles=sorted(r.value for r in principal.roles),
                      participant_id=principal.participant_id if Role.PARTICIPANT in principal.roles else None)
