"""Cursor pagination over id-ordered rows: the cursor is the opaque, base64-encoded last id."""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Generic, TypeVar

import strawberry
from tortoise.models import Model
from tortoise.queryset import QuerySet

from app.core import errors
from app.core.errors import DomainError

MAX_PAGE = 500
DEFAULT_PAGE = 50
R = TypeVar("R", bound=Model)


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
    size = DEFAULT_PAGE if first is None else first
    if size < 0 or size > MAX_PAGE:
        raise DomainError(errors.VALIDATION, f"first must be between 0 and {MAX_PAGE}", ["first"])
    return size


@dataclass
class Page(Generic[R]):
    """One page of id-ordered rows, ready to be shaped into a contract connection type."""

    rows: list[R]
    page_info: PageInfo
    total_count: int

    def cursors(self) -> list[tuple[R, str]]:
        return [(row, encode_cursor(row.id)) for row in self.rows]  # type: ignore[attr-defined]


async def page_of(query: QuerySet[R], first: int | None, after: str | None) -> Page[R]:
    """The page after the cursor, `first` rows long, in id order, with the filtered total."""
    size = page_size(first)
    after_id = decode_cursor(after)
    total = await query.count()
    page_query = query.order_by("id").limit(size + 1)
    if after_id is not None:
        page_query = page_query.filter(id__gt=after_id)
    rows = list(await page_query)
    shown = rows[:size]
    end_cursor = encode_cursor(shown[-1].id) if shown else None  # type: ignore[attr-defined]
    return Page(shown, PageInfo(has_next_page=len(rows) > size, end_cursor=end_cursor), total)
