"""Prometheus metrics, served as text at /metrics."""
from __future__ import annotations

import asyncio
import collections
import os

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, Info, generate_latest

TRANSFERS = Counter("settlegraph_transfers_total", "Transfers handled by recordTransfers", ["outcome"])
GRANT_SPENT_AMOUNT_ISSUES = Counter(
    "settlegraph_grant_spent_amount_issues_total",
    "Grant spent-amount records that disagree with transfer history (mismatch) or are missing (missing)",
    ["kind"],
)
for _kind in ("mismatch", "missing"):  # exported at zero from the start, so alerts see the series
    GRANT_SPENT_AMOUNT_ISSUES.labels(kind=_kind)
GRAPHQL_OPERATIONS = Histogram(
    "settlegraph_graphql_operation_seconds", "GraphQL operation duration", ["operation_type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

GROUP_SIZE = Histogram(
    "settlegraph_group_commit_size", "Writes sharing one transaction (app/group_commit.py), by kind", ["writer"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
GROUP_FALLBACKS = Counter(
    "settlegraph_group_commit_fallbacks_total",
    "Groups that failed as a whole and were written again one by one, by kind", ["writer"],
)

# Event streams (SPEC §13): `settlegraph consume` serves these on its --metrics-port, a server at /metrics.
CONSUMED = Counter("settlegraph_consumer_messages_total",
                   "Transfer events the consumer settled, by outcome (RECORDED, DUPLICATE, REJECTED)", ["outcome"])
CONSUMER_NAKS = Counter("settlegraph_consumer_naks_total",
                        "Transfer events handed back to the broker for redelivery after a database failure")
CONSUMER_PENDING = Gauge("settlegraph_consumer_pending",
                         "Transfer events on the stream the durable consumer has not delivered yet (num_pending)")
CONSUMER_ACK_PENDING = Gauge("settlegraph_consumer_ack_pending",
                             "Transfer events delivered and not acknowledged yet (num_ack_pending)")
for _outcome in ("RECORDED", "DUPLICATE", "REJECTED"):
    CONSUMED.labels(outcome=_outcome)
OUTBOX_BACKLOG = Gauge("settlegraph_outbox_backlog",
                       "Outbox rows (change sets) not relayed to the event stream yet")
RELAYED = Counter("settlegraph_outbox_messages_relayed_total", "Messages the outbox relay published (acknowledged)")


LOOP_LAG = Gauge(
    "settlegraph_event_loop_lag_seconds",
    "How late the event loop ran a periodic tick (every 100 ms), the latest: work that holds the loop delays every "
    "request of the process")
LOOP_LAG_MAX = Gauge(
    "settlegraph_event_loop_lag_max_seconds", "The largest event-loop lag of the last 10 seconds")


class LoopLag:
    """The event loop's lag: run every `every` seconds (app/core/periodic.py), a tick measures how late it runs."""

    def __init__(self, every: float = 0.1, window: float = 10.0) -> None:
        self.every, self.window = every, window
        self.last: float | None = None
        self.recent: collections.deque[tuple[float, float]] = collections.deque()

    async def tick(self) -> None:
        now = asyncio.get_running_loop().time()
        if self.last is not None:
            lag = max(0.0, now - self.last - self.every)
            self.recent.append((now, lag))
            while self.recent and self.recent[0][0] < now - self.window:
                self.recent.popleft()
            LOOP_LAG.set(lag)
            LOOP_LAG_MAX.set(max(item[1] for item in self.recent))
        self.last = now


# With --workers N each worker answers /metrics with its own figures: this names the one that answered.
PROCESS = Info("settlegraph_process", "The process that answered this scrape (one of the server's workers)")


def exposition() -> tuple[bytes, str]:
    PROCESS.info({"pid": str(os.getpid())})
    return generate_latest(), CONTENT_TYPE_LATEST
