"""Idempotency keys (SPEC §12): a retried mutation gets its first answer again and changes nothing.

A caller's key is claimed before the mutation runs (a row with no answer yet; the (caller, key) pair is unique, so
of two concurrent calls with one key exactly one claims it), then given the answer. Another call with the key:
- other arguments (another digest): refused, IDEMPOTENCY_KEY_REUSED;
- the first call answered: that answer, and nothing runs;
- the first call still running: wait for its answer, for at most `wait`; then IDEMPOTENCY_KEY_IN_USE.
A call that failed without an answer (an internal error) releases its key, so a retry runs. Keys are kept for
`ttl` (SETTLEGRAPH_IDEMPOTENCY_HOURS, 24 by default) and purged in the background (`Purger`).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tortoise.exceptions import IntegrityError

from app.core import clock, errors
from app.core.errors import DomainError
from app.db.columns import fits
from models.settlement import IdempotencyKey

log = logging.getLogger("settlegraph.idempotency")

IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
IDEMPOTENCY_KEY_IN_USE = "IDEMPOTENCY_KEY_IN_USE"
POLL = 0.05  # seconds between looks at a key whose first call still runs


def digest(caller: str, operation: str, arguments: dict[str, Any]) -> str:
    canonical = json.dumps([caller, operation, arguments], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """The outcome of presenting a key: `row` claimed it (the call runs), or `answer` replays the first one."""

    row: IdempotencyKey | None = None
    answer: Any = None


async def claim(caller: str, key: str, operation: str, fingerprint: str, ttl: timedelta,
                wait: float = 10.0) -> Claim:
    if not key or not fits(IdempotencyKey, "key", key):
        raise DomainError(errors.VALIDATION, "idempotencyKey must be 1-255 characters", ["idempotencyKey"])
    now = clock.now()
    try:
        row = await IdempotencyKey.create(caller=caller, key=key, operation=operation, digest=fingerprint,
                                          answer=None, created_at=now, expires_at=now + ttl)
        return Claim(row=row)
    except IntegrityError:
        pass  # taken: by a first call (answered or running), or by another use of the key
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        found = await IdempotencyKey.get_or_none(caller=caller, key=key)
        if found is None or found.expires_at <= clock.now():  # purged or expired meanwhile: claim it afresh
            if found is not None:
                await IdempotencyKey.filter(id=found.id).delete()
            return await claim(caller, key, operation, fingerprint, ttl, max(0.0, deadline - loop.time()))
        if found.operation != operation or found.digest != fingerprint:
            raise DomainError(IDEMPOTENCY_KEY_REUSED, f"idempotency key {key!r} was used for another call "
                              f"({found.operation} with other arguments)", ["idempotencyKey"])
        if found.answer is not None:
            return Claim(answer=found.answer)
        if loop.time() >= deadline:
            raise DomainError(IDEMPOTENCY_KEY_IN_USE, f"the first call with idempotency key {key!r} is still "
                              "running: retry later", ["idempotencyKey"])
        await asyncio.sleep(POLL)


async def answer(row: IdempotencyKey, value: Any) -> None:
    """Keep the first call's answer for the key it claimed."""
    await IdempotencyKey.filter(id=row.id).update(answer={"value": value})


async def release(row: IdempotencyKey) -> None:
    """The call failed without an answer: a retry with the key runs."""
    await IdempotencyKey.filter(id=row.id).delete()


async def purge(limit: int = 1_000) -> int:
    """Delete up to `limit` expired keys; how many went."""
    expired = await IdempotencyKey.filter(expires_at__lte=clock.now()).order_by("id").limit(limit) \
        .values_list("id", flat=True)
    if expired:
        await IdempotencyKey.filter(id__in=list(expired)).delete()
    return len(expired)


async def purge_expired() -> None:
    """The background purger's round (app/core/periodic.py): expired keys in batches of 1,000, letting requests
    through between batches; at most 100,000 a round, the rest in the next."""
    for _ in range(100):
        if await purge() < 1_000:
            return
        await asyncio.sleep(0)
