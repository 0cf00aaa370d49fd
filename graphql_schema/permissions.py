"""Strawberry permission classes for the roles of SPEC §10, each with its own message and code."""
from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from app.auth import Role


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
