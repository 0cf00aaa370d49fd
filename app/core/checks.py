"""Checks of identifiers and free text that every domain applies the same way: one place for each."""
from __future__ import annotations

import re

from app.core import errors
from app.core.errors import DomainError

MAX_ID_LENGTH = 128  # transfer, participant and reference ids (the columns are 128 characters)
MAX_REASON_LENGTH = 512
MAX_ROW_ID = 2**63 - 1
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f]")


def parse_id(value: str | int, field: str = "id") -> int:
    """A row id as the API carries it (a string of digits); VALIDATION for anything that cannot be one."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise DomainError(errors.VALIDATION, f"{value!r} is not a valid id", [field]) from None
    if number <= 0 or number > MAX_ROW_ID:
        raise DomainError(errors.VALIDATION, f"{value!r} is not a valid id", [field])
    return number


def check_id(value: str, name: str) -> None:
    """A transfer or participant id: 1 to MAX_ID_LENGTH characters, no surrounding spaces, no control
    characters."""
    stripped = value.strip() if isinstance(value, str) else ""
    if not stripped:
        raise DomainError(errors.VALIDATION, f"{name} must not be empty", [name])
    if len(value) > MAX_ID_LENGTH:
        raise DomainError(errors.VALIDATION, f"{name} is longer than {MAX_ID_LENGTH} characters", [name])
    if value != stripped or _CONTROL_CHARACTER.search(value):
        raise DomainError(errors.VALIDATION, f"{name} has surrounding spaces or control characters", [name])


def check_reason(reason: str | None) -> None:
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        raise DomainError(errors.VALIDATION, f"reason is longer than {MAX_REASON_LENGTH} characters", ["reason"])
