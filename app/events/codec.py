"""The wire format of settlegraph's events in PostgreSQL NOTIFY payloads (app/events/postgres.py), and the bus a
server process uses. Payloads stay far below PostgreSQL's 8,000-byte limit.

The events are the domains' own: a batch status change (app/batches/status.StatusChange), transfers filed into
batches (app/batches/recording.TransfersFiled), a command on a matrix (app/matrices/commands.MatrixChanged).
"""
from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from app.batches.recording import TransfersFiled
from app.batches.status import StatusChange
from app.events.bus import DEFAULT_QUEUE_SIZE, EventBus
from app.events.postgres import PostgresEventBus, asyncpg_dsn
from app.matrices.commands import MatrixChanged

PAYLOAD_LIMIT = 4000  # bytes; PostgreSQL's hard limit is 8000
_HEADER_TEXT_LIMIT = 700  # characters of actor / reason carried in one payload (reasons are at most 512)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _size(value: Any) -> int:
    return len(_dumps(value).encode())


def encode(origin: str, events: Sequence[Any]) -> list[str]:
    """NOTIFY payloads for events, each at most PAYLOAD_LIMIT bytes.

    Status changes that share their facts, their source status included (one matrix-wide settle of thousands of
    batches), travel as one header and a list of batch ids; long lists are split over several payloads. A batch
    appears once in a group (a change to the same status at the same moment), so each batch's changes keep their
    order.
    """
    payloads: list[str] = []
    groups: OrderedDict[tuple[Any, ...], list[int]] = OrderedDict()
    totals: list[int] = []
    matrices: list[int] = []
    for event in events:
        if isinstance(event, StatusChange):
            key = (event.from_status, event.to_status, event.at, event.actor, event.reason, event.matrix_id)
            groups.setdefault(key, []).append(event.batch_id)
        elif isinstance(event, TransfersFiled):
            totals.extend(event.batch_ids)
        elif isinstance(event, MatrixChanged):
            matrices.append(event.matrix_id)
    for (source, to, at, actor, reason, matrix_id), ids in groups.items():
        header = {"o": origin, "k": "s", "f": source, "to": to, "at": at.isoformat(), "a": _clip(actor),
                  "r": _clip(reason), "m": matrix_id}
        for chunk in _split(ids, PAYLOAD_LIMIT - _size({**header, "b": []})):
            payloads.append(_dumps({**header, "b": chunk}))
    if totals:
        header = {"o": origin, "k": "t"}
        for chunk in _split(sorted(set(totals)), PAYLOAD_LIMIT - _size({**header, "b": []})):
            payloads.append(_dumps({**header, "b": chunk}))
    if matrices:
        header = {"o": origin, "k": "m"}
        for chunk in _split(sorted(set(matrices)), PAYLOAD_LIMIT - _size({**header, "b": []})):
            payloads.append(_dumps({**header, "b": chunk}))
    return payloads


def origin_prefix(origin: str) -> str:
    """How every payload of `origin` begins."""
    return _dumps({"o": origin})[:-1] + ","


def decode(payload: str) -> tuple[str, list[Any]]:
    """(origin, events) of one NOTIFY payload."""
    body = json.loads(payload)
    origin = str(body["o"])
    if body["k"] == "s":
        at, to, actor, reason, matrix_id = (datetime.fromisoformat(body["at"]), body["to"], body["a"], body["r"],
                                            body["m"])
        if "f" not in body:  # a process of the version before: (batch id, from status) pairs
            return origin, [StatusChange(int(b), f, to, at, actor, reason, matrix_id) for b, f in body["b"]]
        source = body["f"]
        return origin, [StatusChange(int(b), source, to, at, actor, reason, matrix_id) for b in body["b"]]
    if body["k"] == "t":
        return origin, [TransfersFiled(tuple(int(b) for b in body["b"]))]
    if body["k"] == "m":
        return origin, [MatrixChanged(int(m)) for m in body["b"]]
    raise ValueError(f"unknown event kind {body['k']!r}")


def _clip(text: str | None) -> str | None:
    # Keeps every payload far below 8,000 bytes whatever a JWT puts in a name; reasons fit unclipped.
    if text is None or len(text) <= _HEADER_TEXT_LIMIT:
        return text
    return text[: _HEADER_TEXT_LIMIT - 1] + "…"


def _split(items: Sequence[int], budget: int) -> Iterator[list[int]]:
    """Ids in chunks whose JSON fits in `budget` bytes (sized without encoding each: a settle of 86,400 batches
    would spend half a second in json.dumps)."""
    chunk: list[int] = []
    used = 0
    for item in items:
        cost = len(str(item)) + 1
        if chunk and used + cost > budget:
            yield chunk
            chunk, used = [], 0
        chunk.append(item)
        used += cost
    if chunk:
        yield chunk


class NotifyCodec:
    """The codec a PostgresEventBus carries settlegraph's events with."""

    encode = staticmethod(encode)
    decode = staticmethod(decode)
    origin_prefix = staticmethod(origin_prefix)


CODEC = NotifyCodec()


def bus_for(database_url: str, queue_size: int = DEFAULT_QUEUE_SIZE) -> EventBus:
    """PostgreSQL LISTEN/NOTIFY across processes on PostgreSQL; in-process otherwise."""
    if database_url.startswith(("postgres://", "postgresql://", "asyncpg://")):
        return PostgresEventBus(queue_size=queue_size, codec=CODEC, dsn=asyncpg_dsn(database_url))
    return EventBus(queue_size=queue_size)
