"""The audit log is tamper-evident (SPEC §10): its entries are sealed, in id order, into a hash chain.

Each sealed entry's chain hash is sha256(previous entry's chain hash, the entry's canonical form); a seal records
the hash through its last entry and the previous seal's hash. Sealing is periodic (`Sealer`, one at a time across
processes), never on a mutation's path: entries are written as before and sealed a moment later, once older than
`GRACE` (so no transaction still in flight can commit an entry below what is sealed). Each seal's hash is also
logged, an anchor outside the database.

`verify` recomputes the chain from the entries and names the first sealed entry that was changed, removed,
inserted or reordered; `settlegraph verify-audit` runs it and exits 1 on a break.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from app.core import clock
from app.db.dialect import POSTGRES, dialect_of
from models.settlement import AuditEntry, AuditEntryHash, AuditSeal

log = logging.getLogger("settlegraph.audit")

GENESIS = "0" * 64
GRACE = timedelta(seconds=30)  # longer than any transaction that writes an entry (a day's settlement: seconds)
MAX_SEAL = 10_000  # entries a seal covers at most; the sealer catches up seal by seal
# Entries read, chained and written in one turn of the event loop. At 1,000 clearing calls a second a seal covers
# 10,000 entries; in one part, reading them as objects, chaining and writing their hashes held the loop for over
# 100 ms every 10 s (bench/clearing.py --profile-dir); a part of 500 is a few ms.
_SEAL_PART = 500
_SEALER_LOCK = "SELECT pg_try_advisory_xact_lock(726273657475)"
_READ_CHUNK = 5_000


def canonical(entry: AuditEntry) -> bytes:
    """What the chain covers of an entry: every column, in a form that does not depend on the database."""
    at = entry.at.astimezone(UTC).isoformat()
    return json.dumps([entry.id, entry.actor, entry.roles, entry.operation, entry.target, entry.outcome,
                       entry.detail, at], sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link(previous: str, entry: AuditEntry) -> str:
    return hashlib.sha256(previous.encode() + b"\n" + canonical(entry)).hexdigest()


async def seal(now: datetime | None = None, grace: timedelta = GRACE) -> AuditSeal | None:
    """Seal the entries written since the last seal and older than `grace`; None when there are none (or another
    process is sealing)."""
    cutoff = (now or clock.now()) - grace
    async with in_transaction() as conn:
        if dialect_of(conn) == POSTGRES:
            _, rows = await conn.execute_query(_SEALER_LOCK)
            if not rows[0][0]:
                return None
        last = await AuditSeal.all().order_by("-id").first()
        previous = last.hash if last else GENESIS
        running, first_id, last_id, count = previous, 0, last.last_entry_id if last else 0, 0
        while count < MAX_SEAL:  # a part at a time: other requests run between two parts
            entries = await AuditEntry.filter(id__gt=last_id, at__lte=cutoff).order_by("id").limit(
                min(_SEAL_PART, MAX_SEAL - count))
            if not entries:
                break
            hashes: list[AuditEntryHash] = []
            for entry in entries:
                running = link(running, entry)
                hashes.append(AuditEntryHash(entry_id=entry.id, hash=running))
            await AuditEntryHash.bulk_create(hashes)
            first_id, last_id, count = first_id or entries[0].id, entries[-1].id, count + len(entries)
        if not count:
            return None
        made = await AuditSeal.create(first_entry_id=first_id, last_entry_id=last_id, entry_count=count,
                                      previous_hash=previous, hash=running, sealed_at=clock.now())
    log.info("audit entries sealed", extra={"seal": made.id, "first_entry": made.first_entry_id,
                                            "last_entry": made.last_entry_id, "hash": made.hash})
    return made


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries_checked: int
    first_broken_entry_id: int | None
    sealed_through_entry_id: int | None


async def verify() -> Verification:
    """Recompute the chain over every sealed entry; the first entry whose content, presence or place disagrees with
    it is named."""
    seals = await AuditSeal.all().order_by("id")
    if not seals:
        return Verification(True, 0, None, None)
    through = seals[-1].last_entry_id
    previous, checked = GENESIS, 0
    broken: int | None = None
    start = 0
    while broken is None and start < through:
        end = min(start + _READ_CHUNK, through)
        entries = {e.id: e for e in await AuditEntry.filter(id__gt=start, id__lte=end)}
        stored = {h.entry_id: h.hash for h in await AuditEntryHash.filter(entry_id__gt=start, entry_id__lte=end)}
        for entry_id in sorted(entries.keys() | stored.keys()):
            entry, chained = entries.get(entry_id), stored.get(entry_id)
            if entry is None or chained is None or link(previous, entry) != chained:
                broken = entry_id  # removed, inserted, or changed (a swap changes both rows: the first is named)
                break
            previous, checked = chained, checked + 1
        start = end
    if broken is None:
        broken = _broken_seal(seals, stored_hash=await _hashes_at([s.last_entry_id for s in seals]))
    return Verification(broken is None, checked, broken, through)


async def _hashes_at(entry_ids: list[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for start in range(0, len(entry_ids), _READ_CHUNK):
        chunk = entry_ids[start:start + _READ_CHUNK]
        found.update({h.entry_id: h.hash for h in await AuditEntryHash.filter(entry_id__in=chunk)})
    return found


def _broken_seal(seals: list[AuditSeal], stored_hash: dict[int, str]) -> int | None:
    """The first entry of the first seal that does not continue the previous one or close on its entries' chain
    (the chain's hashes themselves were rewritten)."""
    previous = GENESIS
    for s in seals:
        if s.previous_hash != previous or stored_hash.get(s.last_entry_id) != s.hash:
            return s.first_entry_id
        previous = s.hash
    return None


async def seal_all() -> None:
    """Seal every entry that is due, a seal of at most MAX_SEAL entries at a time (the background sealer's round:
    app/core/periodic.py; entries wait unsealed meanwhile, nothing is lost)."""
    while await seal() is not None:
        pass
