"""Cursor pagination over id-ordered rows: the cursor is the opaque, base64-encoded last id."""
from __future__ import annotations

import base64
import binascii

import strawberry

from app import errors
from app.errors import DomainError

MAX_PAGE = 500


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{row_id}".encode()).decode()


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        kind, _, value = text.partition(":")
        if kind != "id":
            raise ValueError
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise DomainError(errors.VALIDATION, f"{cursor!r} is not a cursor from this API", ["after"]) from None


def page_size(first: int | None) -> int:
    size = 50 if first is None else first
    if size < 0 or size > MAX_PAGE:
        raise DomainError(errors.VALIDATION, f"first must be between 0 and {MAX_PAGE}", ["first"])
    return size
