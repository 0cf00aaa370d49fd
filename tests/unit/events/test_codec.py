"""NOTIFY payloads stay far below PostgreSQL's 8,000 bytes and decode to the events sent; bounded queues."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.batches.recording import TransfersFiled
from app.batches.status import StatusChange
from app.events import codec, watchers
from app.events.bus import EventBus, SubscriberOverflow
from app.events.codec import decode, encode
from app.events.postgres import asyncpg_dsn
from app.matrices.commands import MatrixChanged

AT = datetime(2026, 3, 2, 14, 5, 0, 123456, tzinfo=UTC)


def fields(event: StatusChange) -> tuple[object, ...]:
    return (event.batch_id, event.from_status, event.to_status, event.at, event.actor, event.reason, event.matrix_id)


def test_a_matrix_wide_settle_is_split_into_small_payloads():
    sent = [StatusChange(i, "AWAITING_SETTLEMENT", "SETTLED", AT, "sam-settler", "month end", 7)
            for i in range(1, 20_001)]
    payloads = encode("p1", sent)
    assert len(payloads) > 1
    assert max(len(p.encode()) for p in payloads) <= codec.PAYLOAD_LIMIT
    received = [e for p in payloads for e in decode(p)[1]]
    assert [fields(e) for e in received] == [fields(e) for e in sent]  # type: ignore[arg-type]
    assert {decode(p)[0] for p in payloads} == {"p1"}


def test_changes_from_several_statuses_keep_each_batch_in_order():
    # disputeMatrix moves OPEN and CLOSED batches; a request closes OPEN ones and then locks them in one call.
    sent = [StatusChange(1, "OPEN", "IN_DISPUTE", AT, "op", None, 3), StatusChange(2, "CLOSED", "IN_DISPUTE", AT, "op",
                                                                                      None, 3),
            StatusChange(3, "OPEN", "IN_DISPUTE", AT, "op", None, 3),
            StatusChange(4, "OPEN", "CLOSED", AT, "op", "r", 5), StatusChange(4, "CLOSED", "AWAITING_SETTLEMENT", AT,
                                                                              "op", "r", 5)]
    received = [e for p in encode("p1", sent) for e in decode(p)[1]]
    assert sorted(fields(e) for e in received) == sorted(fields(e) for e in sent)  # type: ignore[arg-type]
    assert [e.to_status for e in received if e.batch_id == 4] == ["CLOSED", "AWAITING_SETTLEMENT"]


def test_payloads_of_the_version_before_are_read():
    # During a rolling restart a process of the version before may still send (batch id, from status) pairs.
    old = '{"o":"p0","k":"s","to":"SETTLED","at":"2026-03-02T14:05:00.123456+00:00","a":"sam","r":null,"m":7,' \
          '"b":[[1,"AWAITING_SETTLEMENT"],[2,"AWAITING_SETTLEMENT"]]}'
    origin, events = decode(old)
    assert origin == "p0"
    assert [fields(e) for e in events] == [(1, "AWAITING_SETTLEMENT", "SETTLED", AT, "sam", None, 7),
                                           (2, "AWAITING_SETTLEMENT", "SETTLED", AT, "sam", None, 7)]


def test_long_texts_still_fit():
    reason = "é😀" * 256  # 512 characters, the longest reason a mutation accepts, 1,536 bytes in UTF-8
    actor = "x" * 5000  # a JWT can carry any name: clipped in the payload, never over the limit
    sent = [StatusChange(i, None, "OPEN", AT, actor, reason, None) for i in range(1, 3000)]
    payloads = encode("p1", sent)
    assert max(len(p.encode()) for p in payloads) <= codec.PAYLOAD_LIMIT
    received = [e for p in payloads for e in decode(p)[1]]
    assert isinstance(received[0], StatusChange)
    assert received[0].reason == reason and received[0].actor is not None and len(received[0].actor) < 1000
    assert len(received) == len(sent)


def test_totals_of_many_batches_are_split_and_deduplicated():
    payloads = encode("p1", [TransfersFiled(tuple(range(1, 50_001))), TransfersFiled((5, 50_000, 60_000))])
    assert max(len(p.encode()) for p in payloads) <= codec.PAYLOAD_LIMIT
    ids = [i for p in payloads for e in decode(p)[1] if isinstance(e, TransfersFiled) for i in e.batch_ids]
    assert ids == [*range(1, 50_001), 60_000]


async def test_a_subscriber_that_falls_behind_is_dropped_and_holds_at_most_its_queue():
    bus = EventBus(queue_size=3)
    slow = bus.subscribe()
    fine = bus.subscribe()
    for i in range(1, 4):
        bus.publish([TransfersFiled((i,))])
        await fine.next()
    assert slow.queue.qsize() == 3
    bus.publish([TransfersFiled((4,))])  # one too many: dropped, its events released
    assert slow not in bus.subscribers and fine in bus.subscribers
    assert slow.queue.qsize() == 1
    with pytest.raises(SubscriberOverflow, match="slow consumer"):
        await slow.next()
    assert isinstance(await fine.next(), TransfersFiled)
    assert bus.stats.dropped_subscribers == 1


async def test_filters_are_applied_when_publishing():
    bus = EventBus(queue_size=2)
    only_seven = bus.subscribe(watchers.BatchStatusFilter(batch_ids=frozenset({7})).accepts)
    for i in range(1, 100):  # many events for other batches never fill its queue
        bus.publish([StatusChange(i, None, "OPEN", AT, None, None, None)])
    bus.publish([TransfersFiled((7,))])
    assert only_seven in bus.subscribers
    assert (await only_seven.next()).batch_id == 7  # type: ignore[union-attr]
    assert only_seven.queue.empty()


def test_the_dsn_drops_tortoise_pool_parameters():
    assert asyncpg_dsn("postgres://u:p@h:5432/db?minsize=1&maxsize=20&sslmode=require") == (
        "postgresql://u:p@h:5432/db?sslmode=require")


def test_matrix_changes_travel_too():
    payloads = encode("p1", [MatrixChanged(3), MatrixChanged(3), MatrixChanged(1)])
    assert [[e.matrix_id for e in decode(p)[1]] for p in payloads] == [[1, 3]]  # type: ignore[union-attr]
