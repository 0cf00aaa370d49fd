"""What a column can hold: a value longer than its column was never stored there, so a lookup by it finds nothing
(and the ORM, which checks lengths, is never asked)."""
from __future__ import annotations

from typing import Any


def fits(model: Any, field: str, value: str) -> bool:
    """Whether `value` fits `model`'s CharField `field` (its max_length, from the model itself)."""
    return len(value) <= int(model._meta.fields_map[field].max_length)
