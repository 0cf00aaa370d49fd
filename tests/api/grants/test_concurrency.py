"""Grants under concurrent HTTP calls (SPEC §9: concurrent prepares can never overspend). On PostgreSQL the
calls really overlap in the database (row lock of the grant); on SQLite they queue on the one connection,
which checks the same invariants through the same API."""
from __future__ import annotations

import asyncio
import random
from decimal import Decimal

from tests.support.grants import ABORT, COMMIT, PREPARE, clock_at, create_grant, grant, reconcile, value


async def _prepare(gql, transfer_id: str, amount: str, grant_id: str, receive: str | None = None) -> dict:
    data = {"transferId": transfer_id, "payerId": "dfsp-a", "payeeId": "dfsp-b", "amount": amount,
            "currency": "USD", "grantId": grant_id}
    if receive is not None:
        data["receiveAmount"] = receive
    return (await gql(PREPARE, {"input": data}, role="ingest"))["prepareTransfer"]


async def test_50_concurrent_prepares_against_one_grant_never_exceed_its_limit(gql):
    with clock_at("2026-03-01T12:00"):
        g = await create_grant(gql, debit="255.00")
        payloads = await asyncio.gather(*(_prepare(gql, f"c{i:02d}", "10.00", g["id"]) for i in range(50)))
        accepted = [p for p in payloads if p["preparedTransfer"]]
        refused = [p for p in payloads if not p["preparedTransfer"]]
        assert len(accepted) == 25
        assert {e["code"] for p in refused for e in p["userErrors"]} == {"GRANT_LIMIT_EXCEEDED"}
        after = await grant(gql, g["id"])
        assert value(after["spentDebitAmount"]) == "250.00"
        # the records form one unbroken chain: each total continues the one before
        totals = [Decimal(r["totalDebitAmount"]) for r in after["spentAmounts"]]
        assert totals == [Decimal(10 * (i + 1)) for i in range(25)]
        assert (await reconcile(gql, g["id"]))["consistent"]


async def test_concurrent_prepares_commits_and_aborts_keep_every_sum_exact(gql):
    rng = random.Random(5)
    with clock_at("2026-03-01T12:00"):
        g = await create_grant(gql, receive="500.00", interval="R/2026-03-01T00:00:00Z/P1D")
        first = await asyncio.gather(*(
            _prepare(gql, f"a{i:02d}", f"{rng.randint(5, 40)}.00", g["id"]) for i in range(40)))
        reserved = [p["preparedTransfer"]["transferId"] for p in first if p["preparedTransfer"]]
        assert reserved

        async def finish(transfer_id: str, n: int) -> dict:
            if n % 3 == 0:
                return (await gql(ABORT, {"id": transfer_id, "sent": "1.00"}, role="ingest"))["abortTransfer"]
            delivered = "3.00" if n % 3 == 1 else None
            return (await gql(COMMIT, {"id": transfer_id, "delivered": delivered}, role="ingest"))["commitTransfer"]

        calls = [finish(t, n) for n, t in enumerate(reserved)]
        calls += [finish(t, n) for n, t in enumerate(reserved[:10])]  # retries racing the first calls
        calls += [_prepare(gql, f"b{i:02d}", f"{rng.randint(5, 40)}.00", g["id"]) for i in range(30)]
        rng.shuffle(calls)
        outcomes = await asyncio.gather(*calls)
        codes = {e["code"] for o in outcomes for e in o["userErrors"]}
        assert codes <= {"GRANT_LIMIT_EXCEEDED"}, codes

        after = await grant(gql, g["id"])
        spent = Decimal(value(after["spentReceiveAmount"]))
        assert spent <= Decimal("500.00")
        states = await gql("""query($ids: ID!) { grant(id: $ids) { spentAmounts(last: 1000) {
            transferId state transferReceiveAmount } } }""", {"ids": g["id"]}, role="viewer")
        latest: dict[str, Decimal] = {}
        for record in states["grant"]["spentAmounts"]:
            latest[record["transferId"]] = Decimal(record["transferReceiveAmount"])
        assert sum(latest.values()) == spent
        report = await reconcile(gql, g["id"])
        assert report["consistent"], report["issues"]
