"""The transactions of prepares, commits and aborts (SPEC §9): concurrent calls of one kind share one
(app/db/group_commit.py), each with its own outcome and its own audit entry (app/audit.py): the OK entries are
written in the group's transaction, a refusal or failure by the caller's `audit.submitted`."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import audit
from app.core import clock
from app.core.errors import DomainError
from app.db import group_commit
from app.db.group_commit import GroupWriter
from app.db.retry import retrying_deadlocks
from app.grants.store import GrantStore

GROUP_LIMIT = 200


@dataclass(slots=True)
class Work:
    """One prepare, commit or abort waiting for its group: its audit command and its arguments."""

    command: audit.Command
    transfer_id: str
    args: tuple[Any, ...]


RunAll = Callable[[GrantStore, list[Work], datetime], Awaitable[list[Any]]]


def writer(name: str, run_all: RunAll) -> GroupWriter[Work, Any]:
    """Works of one kind share a group; a transfer appears at most once in a group, and one actor's works only
    (the actor is recorded on the batches a commit opens)."""
    async def write(works: list[Work]) -> list[Any]:
        return await in_group(name, works, run_all)

    return group_commit.writer(name, lambda: GroupWriter(name, write, limit=GROUP_LIMIT,
                                                         key=lambda work: work.command.actor,
                                                         unique=lambda work: work.transfer_id))


async def in_group(name: str, works: list[Work], run_all: RunAll) -> list[Any]:
    """Run the works in one transaction (`run_all` gives one result per work), with the OK audit entries of those
    that went through. A DomainError result is that work's refusal, having written nothing; an exception (also
    Dirty, a failure after writing) fails the group, and app/db/group_commit.py writes its works one by one."""
    async def transaction() -> list[Any]:
        now = clock.now()
        async with in_transaction() as conn:
            results = await run_all(GrantStore.on(conn), works, now)
            entries = [w.command.entry() for w, r in zip(works, results, strict=True)
                       if not isinstance(r, DomainError)]
            await audit.insert(conn, entries)
        for entry in entries:
            audit.log_entry(entry)
        return results

    for attempt in range(2):
        try:
            return await retrying_deadlocks(transaction, name)
        except IntegrityError:
            # The same transferId prepared concurrently by another group: look again, answer as a retry.
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
