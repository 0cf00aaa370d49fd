"""Strawberry permission classes for the roles of SPEC §10, each with its own message and code."""
from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from app.auth import Role
from app.core import errors
from app.core.errors import DomainError


class _RolePermission(BasePermission):
    role: Role = Role.VIEWER

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        if principal is None:
            self.message = info.context.auth_failure or "authentication required: send Authorization: Bearer <key>"
            self.error_extensions = {"code": "UNAUTHENTICATED"}
            return False
        if not principal.has(self.role):
            self.message = f"{principal.name} lacks the {self.role.value} role this operation needs"
            self.error_extensions = {"code": "FORBIDDEN"}
            return False
        return True


class IsViewer(_RolePermission):
    role = Role.VIEWER


class IsOperator(_RolePermission):
    role = Role.OPERATOR


class IsSettler(_RolePermission):
    role = Role.SETTLER


class IsIngest(_RolePermission):
    role = Role.INGEST


class IsAdmin(_RolePermission):
    role = Role.ADMIN


class IsAuditor(_RolePermission):
    """The audit log: ADMIN and AUDITOR."""

    role = Role.AUDITOR


def scope_of(info: Info) -> str | None:
    """The participant a PARTICIPANT caller is bound to (SPEC §10): what it reads is that participant's own rows;
    None for every other caller."""
    principal = info.context.principal
    return principal.scope if principal is not None else None


def sees(info: Info, *participant_ids: str) -> bool:
    """Whether the caller may see a row of these participants (one of them is its own, or it reads everyone's)."""
    scope = scope_of(info)
    return scope is None or scope in participant_ids


def withheld(info: Info, what: str) -> None:
    """Refuse a figure that would reveal other participants' amounts to a PARTICIPANT caller."""
    if scope_of(info) is not None:
        raise DomainError(errors.FORBIDDEN, f"{what} are withheld from PARTICIPANT callers: they sum other "
                          "participants' amounts")
