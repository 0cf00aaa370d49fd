"""Small types shared by several domains."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import strawberry


@strawberry.type
class Attribute:
    key: str
    value: str


@strawberry.input
class AttributeInput:
    key: str
    value: str


def attributes_of(raw: Iterable[Any] | None) -> list[Attribute]:
    """Stored attribute lists ([{key, value}] or [[key, value]]) as GraphQL attributes."""
    out: list[Attribute] = []
    for item in raw or []:
        if isinstance(item, dict):
            out.append(Attribute(key=item["key"], value=item["value"]))
        else:
            out.append(Attribute(key=item[0], value=item[1]))
    return out
