"""The `settlegraph` console script: serve, migrate, demo (RUNNING.md)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from app import settlement_models
from app.core import clock, logs
from app.core.settings import Settings
from app.db import connection as database
from app.loopback import is_loopback_name

log = logging.getLogger("settlegraph")


def create_app_from_env():  # type: ignore[no-untyped-def]
    """Factory for uvicorn workers: every worker builds its own app from the environment."""
    from app.asgi import create_app

    logs.configure(os.environ.get("SETTLEGRAPH_LOG_LEVEL", "INFO"))
    return create_app(Settings.from_env())


async def _migrate(settings: Settings) -> None:
    await database.migrate(settings.database_url)
    await database.init(settings.database_url)
    try:
        await settlement_models.ensure_default_model()
    finally:
        await database.close()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    asyncio.run(_migrate(settings))
    log.info("migrations applied", extra={"database": _safe_url(settings.database_url)})
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings.from_env()
    if args.workers > 1 and not settings.is_postgres:
        log.error("--workers %d needs PostgreSQL: SQLite is the single-process embedded default "
                  "(set SETTLEGRAPH_DATABASE_URL=postgres://...)", args.workers)
        return 2
    if not settings.has_credentials:
        if not is_loopback_name(args.host):
            log.error("refusing to serve on %s without SETTLEGRAPH_API_KEYS or a JWT key: every caller "
                      "would be ADMIN", args.host)
            return 2
        os.environ["SETTLEGRAPH_OPEN_ACCESS"] = "true"
        banner = ("NO CREDENTIALS CONFIGURED: every caller is treated as ADMIN. This is the loopback demo "
                  "mode; set SETTLEGRAPH_API_KEYS before exposing settlegraph.")
        log.warning(banner)
        print(f"\n*** {banner} ***\n", file=sys.stderr)
    asyncio.run(_migrate(settings))
    log.info("serving", extra={"host": args.host, "port": args.port, "workers": args.workers,
                               "database": _safe_url(settings.database_url)})
    # access_log off: app/logs.py keeps uvicorn.access at WARNING anyway, so the per-request call is waste.
    uvicorn.run("app.cli:create_app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_config=None, ws="websockets-sansio", lifespan="on", access_log=False,
                # Subscription pushes are small JSON: per-message deflate cost ~40 MB at 1,000 connections
                # and ~10 us of CPU per push for little gain.
                ws_per_message_deflate=False)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.publish:
        if _nats_settings("demo --publish") is None:
            return 2
        asyncio.run(_demo_publish(settings, args.transfers))
        return 0
    asyncio.run(_demo(settings, args.transfers))
    return 0


async def _demo_setup(settings: Settings) -> Any:
    """Migrate, and create the demo's second model; the demo actor."""
    from app.auth import Principal, Role

    await _migrate(settings)
    await database.init(settings.database_url)
    actor = Principal("demo", frozenset({Role.ADMIN}))
    if not await settlement_models.SettlementModel.filter(name="RTP").exists():
        await settlement_models.create_model(actor, "RTP", 60, ["USD", "EUR"], ["transferType"], False)
    return actor


def _demo_transfers(count: int) -> list[Any]:
    """A small, realistic day of transfers: eight participants, two currencies, the last hour."""
    from app.batches.transfers import TransferRequest

    rng = random.Random(7)
    participants = [f"dfsp-{i:02d}" for i in range(1, 9)]
    now = clock.now()
    requests = []
    for i in range(count):
        payer, payee = rng.sample(participants, 2)
        currency = rng.choice(["USD", "EUR"])
        requests.append(TransferRequest(
            transfer_id=f"demo-{now:%Y%m%d%H%M%S}-{i:05d}", payer_id=payer, payee_id=payee,
            amount=f"{rng.randint(100, 500_000) / 100:.2f}", currency=currency,
            committed_at=now - timedelta(seconds=rng.randint(0, 3600)),
            settlement_model=rng.choice([None, "RTP"]),
            attributes=[("transferType", rng.choice(["P2P", "MERCHANT"]))],
        ))
    return requests


async def _demo(settings: Settings, count: int) -> None:
    """Fill the database with a small, realistic day: two models, transfers, one closed batch."""
    from app.batches import recording
    from app.batches.lifecycle import change_status
    from app.batches.lookups import BatchRef
    from app.batches.status import Action

    actor = await _demo_setup(settings)
    try:
        result = await recording.record_transfers(_demo_transfers(count), actor)
        first = next((o for o in result.outcomes if o.batch_id), None)
        if first is not None:
            await change_status(BatchRef(transfer_id=first.transfer_id), Action.CLOSE, actor, "demo close")
        print(f"demo: {result.count('RECORDED')} recorded, {result.count('DUPLICATE')} duplicates, "
              f"{result.count('REJECTED')} rejected, {len(result.created_batch_ids)} batches opened")
    finally:
        await database.close()


async def _demo_publish(settings: Settings, count: int) -> None:
    """The demo day as a clearing engine would send it (SPEC §13): on the transfers stream, every other event
    with Mojaloop's TransferCommittedFulfiled names, for `settlegraph consume` to file."""
    import json

    from app.streams import broker

    await _demo_setup(settings)
    await database.close()
    assert settings.nats_url
    nc = await broker.connect(settings.nats_url, "settlegraph-demo")
    try:
        js = nc.jetstream(timeout=10)
        await broker.ensure_stream(js, settings.nats_stream, [settings.nats_subject])
        pending = []
        for i, t in enumerate(_demo_transfers(count)):
            attributes = dict(t.attributes or [])
            if i % 2:
                body = {"transferId": t.transfer_id, "payerFspId": t.payer_id, "payeeFspId": t.payee_id,
                        "amount": t.amount, "currencyCode": t.currency, "settlementModel": t.settlement_model,
                        "completedTimestamp": int(t.committed_at.timestamp() * 1000), "attributes": attributes}
            else:
                body = {"transferId": t.transfer_id, "payerId": t.payer_id, "payeeId": t.payee_id,
                        "amount": t.amount, "currency": t.currency, "settlementModel": t.settlement_model,
                        "committedAt": t.committed_at.isoformat(), "attributes": attributes}
            pending.append(await js.publish_async(settings.nats_subject, json.dumps(body).encode(),
                                                  headers={"Nats-Msg-Id": t.transfer_id}))
        await asyncio.gather(*pending)
        print(f"demo: {count} transfer events published on {settings.nats_subject} (stream {settings.nats_stream}); "
              "run `settlegraph consume` to file them")
    finally:
        await nc.drain()


NATS_HELP = """settlegraph {command} needs a NATS JetStream server (SPEC §13). Set:
  SETTLEGRAPH_NATS_URL=nats://127.0.0.1:4222   the server (required)
and, when the defaults do not fit:
  SETTLEGRAPH_NATS_STREAM=SETTLEGRAPH_TRANSFERS             stream of committed transfers (created if missing)
  SETTLEGRAPH_NATS_SUBJECT=hub.transfers.committed          subject the clearing engine publishes on
  SETTLEGRAPH_NATS_DURABLE=settlegraph                      durable consumer shared by every consume process
  SETTLEGRAPH_NATS_DEADLETTER_SUBJECT=settlegraph.deadletter.transfers
  SETTLEGRAPH_NATS_EVENTS_PREFIX=settlegraph.events         subjects of the outbox relay's events
See the README, "Event streams"."""


def _nats_settings(command: str) -> Settings | None:
    settings = Settings.from_env()
    if not settings.nats_url:
        print(NATS_HELP.format(command=command), file=sys.stderr)
        return None
    return settings


async def _migrate_when_reachable(settings: Settings) -> None:
    """_migrate, waiting (with a back-off, saying why) for a database that is not reachable yet: a stream process
    started beside its database, or during an outage, waits instead of exiting."""
    from app.streams import broker

    attempt = 0
    while True:
        attempt += 1
        try:
            await _migrate(settings)
            return
        except Exception as exc:
            wait = broker.backoff(attempt)
            log.error("cannot reach the database at %s (%s: %s); trying again in %.1f s",
                      _safe_url(settings.database_url), type(exc).__name__, str(exc)[:200], wait)
            await asyncio.sleep(wait)


def _stop_on_signals(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)


def cmd_consume(args: argparse.Namespace) -> int:
    from app.batches.recording import MAX_TRANSFERS_PER_CALL

    if not 1 <= args.batch <= MAX_TRANSFERS_PER_CALL:
        log.error("--batch must be between 1 and %d", MAX_TRANSFERS_PER_CALL)
        return 2
    settings = _nats_settings("consume")
    if settings is None:
        return 2
    asyncio.run(_consume(settings, args.batch, args.concurrency, args.metrics_port, args.metrics_host))
    return 0


async def _consume(settings: Settings, batch: int, concurrency: int, metrics_port: int | None,
                   metrics_host: str) -> None:
    from prometheus_client import start_http_server

    from app.streams.consumer import Consumer

    await _migrate_when_reachable(settings)
    await database.init(settings.database_url)
    try:
        if metrics_port:
            start_http_server(metrics_port, addr=metrics_host)
        consumer = Consumer(settings, batch=batch, concurrency=concurrency)
        _stop_on_signals(consumer.stop)
        await consumer.run()
    finally:
        await database.close()


def cmd_relay(args: argparse.Namespace) -> int:
    settings = _nats_settings("relay")
    if settings is None:
        return 2
    asyncio.run(_relay(settings))
    return 0


async def _relay(settings: Settings) -> None:
    from app.streams import relay

    await _migrate_when_reachable(settings)
    await database.init(settings.database_url)
    try:
        stopping = asyncio.Event()
        _stop_on_signals(stopping.set)
        await relay.run(settings, stopping)
    finally:
        await database.close()


def cmd_reconcile_grants(args: argparse.Namespace) -> int:
    return asyncio.run(_reconcile_grants(Settings.from_env(), args.grant))


async def _reconcile_grants(settings: Settings, grant_ids: list[str] | None) -> int:
    """SPEC §9: recompute grants' spent amounts from transfer history; one JSON line per grant on stdout,
    issues also logged; exit 1 when any grant disagrees. Nothing is repaired."""
    import json

    from app.grants import reconciliation as grants

    await database.init(settings.database_url)
    inconsistent = 0
    try:
        for grant_id in grant_ids or await grants.limited_grant_ids():
            report = await grants.reconcile_grant(grant_id)
            inconsistent += 0 if report.consistent else 1
            print(json.dumps({
                "grant": report.grant_id, "consistent": report.consistent,
                "checkedTransfers": report.checked_transfers, "checkedRecords": report.checked_records,
                "issues": [issue.__dict__ for issue in report.issues],
            }))
    finally:
        await database.close()
    return 1 if inconsistent else 0


def cmd_verify_audit(args: argparse.Namespace) -> int:
    return asyncio.run(_verify_audit(Settings.from_env(), args.seal))


async def _verify_audit(settings: Settings, seal_first: bool) -> int:
    """SPEC §10: recompute the audit log's hash chain; one JSON line on stdout; exit 1 when an entry breaks it."""
    import json

    from app.audit import chain

    await database.init(settings.database_url)
    try:
        if seal_first:
            while await chain.seal() is not None:
                pass
        found = await chain.verify()
    finally:
        await database.close()
    print(json.dumps({"ok": found.ok, "entriesChecked": found.entries_checked,
                      "firstBrokenEntryId": found.first_broken_entry_id,
                      "sealedThroughEntryId": found.sealed_through_entry_id}))
    if not found.ok:
        log.error("the audit log's hash chain is broken", extra={"first_broken_entry": found.first_broken_entry_id})
    return 0 if found.ok else 1


def cmd_schema(args: argparse.Namespace) -> int:
    from graphql_schema.schema import schema

    text = schema.as_str() + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _safe_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="settlegraph", description="settlement back office, GraphQL API")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="apply pending migrations, then serve")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)
    migrate = sub.add_parser("migrate", help="apply pending migrations")
    migrate.set_defaults(func=cmd_migrate)
    demo = sub.add_parser("demo", help="fill the database with demo data")
    demo.add_argument("--transfers", type=int, default=2000)
    demo.add_argument("--publish", action="store_true",
                      help="publish the demo day on the transfers stream (SETTLEGRAPH_NATS_URL) for `consume`")
    demo.set_defaults(func=cmd_demo)
    consume = sub.add_parser("consume", help="file committed transfers from a NATS JetStream stream (SPEC §13)")
    consume.add_argument("--batch", type=int, default=1000, help="messages fetched and filed together (at most)")
    consume.add_argument("--concurrency", type=int, default=2,
                         help="fetched batches filed at once by this process (each in its own transaction)")
    consume.add_argument("--metrics-port", type=int, default=None,
                         help="serve Prometheus metrics (pending count, outcomes) on this port")
    consume.add_argument("--metrics-host", default="127.0.0.1")
    consume.set_defaults(func=cmd_consume)
    relay = sub.add_parser("relay", help="publish the outbox's settlement events to NATS JetStream (SPEC §13)")
    relay.set_defaults(func=cmd_relay)
    reconcile = sub.add_parser("reconcile-grants",
                               help="check grant spent amounts against transfer history (exit 1 on differences)")
    reconcile.add_argument("--grant", action="append", help="a grant id (repeatable); default: every limited grant")
    reconcile.set_defaults(func=cmd_reconcile_grants)
    verify = sub.add_parser("verify-audit", help="recompute the audit log's hash chain (exit 1 when it is broken)")
    verify.add_argument("--seal", action="store_true", help="first seal the entries older than the grace period")
    verify.set_defaults(func=cmd_verify_audit)
    schema = sub.add_parser("schema", help="print the GraphQL schema (SDL)")
    schema.add_argument("-o", "--output", help="write to this file instead of stdout")
    schema.set_defaults(func=cmd_schema)
    args = parser.parse_args(argv)
    logs.configure(os.environ.get("SETTLEGRAPH_LOG_LEVEL", "INFO"))
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
