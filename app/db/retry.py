"""Deadlock retry: a transaction PostgreSQL aborted to break a deadlock is run again."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tortoise.exceptions import OperationalError, TransactionManagementError

log = logging.getLogger(__name__)

RETRIES = 4
T = TypeVar("T")


def _is_deadlock(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__name__ in {"DeadlockDetectedError", "SerializationError"}:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def retrying_deadlocks(work: Callable[[], Awaitable[T]], what: str) -> T:
    """Run a transaction (`work` opens it), again when PostgreSQL broke a deadlock by aborting it.

    Locks are taken in id order everywhere, so deadlocks are rare; the retry makes the rare one invisible."""
    for attempt in range(RETRIES):
        try:
            return await work()
        except (OperationalError, TransactionManagementError) as exc:
            if attempt + 1 < RETRIES and _is_deadlock(exc):
                log.warning("%s retried after %s", what, type(exc).__name__)
                await asyncio.sleep(0.005 * (attempt + 1))
                continue
            raise
    raise AssertionError("unreachable")  # pragma: no cover
