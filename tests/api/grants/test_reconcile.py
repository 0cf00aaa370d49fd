"""Reconciliation of grant spent amounts (SPEC §9): recomputed from transfer history, differences reported,
logged and counted at /metrics, never repaired."""
from __future__ import annotations

import re

from tortoise import Tortoise

from tests.support.grants import abort, clock_at, commit, create_grant, grant, prepare, reconcile, value


async def _issues_metric(gql, kind: str) -> float:
    text = (await gql.http.get("/metrics")).text
    found = re.search(rf'settlegraph_grant_spent_amount_issues_total{{kind="{kind}"}} ([0-9.e+]+)', text)
    assert found, "the counter is exported from the start"
    return float(found.group(1))


async def _sql(statement: str) -> None:
    await Tortoise.get_connection("default").execute_script(statement)


async def test_consistent_history_reconciles(gql):
    with clock_at("2026-03-02T12:00"):
        g = await create_grant(gql, debit="100.00", interval="R/2026-03-01T00:00:00Z/P1D")
        await prepare(gql, "t1", "30.00", g["id"], at="2026-03-01T10:00")
        await prepare(gql, "t2", "20.00", g["id"])
        await commit(gql, "t1", "10.00")
        await abort(gql, "t2", "5.00")
        report = await reconcile(gql, g["id"])
        assert report == {"grantId": g["id"], "consistent": True, "checkedTransfers": 2, "checkedRecords": 4,
                          "issues": []}
        unlimited = await create_grant(gql)
        assert (await reconcile(gql, unlimited["id"]))["consistent"]
        payload = (await gql('mutation { reconcileGrant(id: "999") { reconciliation { consistent } '
                             'userErrors { code } } }', role="operator"))["reconcileGrant"]
        assert payload == {"reconciliation": None, "userErrors": [{"code": "NOT_FOUND"}]}


async def test_a_tampered_sum_is_reported_counted_and_left_alone(gql):
    with clock_at("2026-03-01T12:00"):
        g = await create_grant(gql, debit="100.00")
        await prepare(gql, "t1", "30.00", g["id"])
        await prepare(gql, "t2", "20.00", g["id"])
        before = await _issues_metric(gql, "mismatch")
        await _sql(f"UPDATE grant_spent_amount SET total_debit = total_debit - 1000 "
                   f"WHERE grant_id = {int(g['id'])} AND transfer_id = 't2'")
        report = await reconcile(gql, g["id"])
        assert not report["consistent"]
        assert {(i["kind"], i["subject"], i["field"], i["expected"], i["recorded"]) for i in report["issues"]} == {
            ("MISMATCH", "grant total", "totalDebit", "50.00", "40.00"),
            ("MISMATCH", report["issues"][0]["subject"], "totalDebit", "50.00", "40.00"),
        }
        assert await _issues_metric(gql, "mismatch") == before + len(report["issues"])
        # never repaired: the wrong sum is still what the grant reports, and the next check finds it again
        assert value((await grant(gql, g["id"]))["spentDebitAmount"]) == "40.00"
        assert not (await reconcile(gql, g["id"]))["consistent"]


async def test_a_missing_record_is_reported_and_counted(gql):
    with clock_at("2026-03-01T12:00"):
        g = await create_grant(gql, receive="100.00", interval="R/2026-03-01T00:00:00Z/P1D")
        await prepare(gql, "t1", "30.00", g["id"])
        await prepare(gql, "t2", "20.00", g["id"])
        before = await _issues_metric(gql, "missing")
        await _sql(f"DELETE FROM grant_spent_amount WHERE grant_id = {int(g['id'])} AND transfer_id = 't1'")
        report = await reconcile(gql, g["id"])
        kinds = {(i["kind"], i["transferId"], i["field"]) for i in report["issues"]}
        assert ("MISSING", "t1", "record") in kinds
        assert await _issues_metric(gql, "missing") > before
        # committing the transfer whose record vanished still works, and says so in the log and the metric
        counted = await _issues_metric(gql, "missing")
        await commit(gql, "t2")
        assert await _issues_metric(gql, "missing") == counted
        await _sql(f"DELETE FROM grant_spent_amount WHERE grant_id = {int(g['id'])}")
        await commit(gql, "t1")
        assert await _issues_metric(gql, "missing") == counted + 1


async def test_a_state_out_of_step_with_the_transfer_is_reported(gql):
    with clock_at("2026-03-01T12:00"):
        g = await create_grant(gql, debit="100.00")
        await prepare(gql, "t1", "30.00", g["id"])
        await _sql("UPDATE prepared_transfer SET state = 'ABORTED', sent_amount = 0 WHERE transfer_id = 't1'")
        report = await reconcile(gql, g["id"])
        fields = {(i["subject"], i["field"]) for i in report["issues"]}
        assert ("transfer t1", "transferDebit") in fields
        assert ("transfer t1", "state ABORTED recorded as RESERVED") in fields
        assert ("grant total", "totalDebit") in fields


async def test_operators_cli_reconciles_every_limited_grant(gql, server):
    import asyncio
    import json
    import os
    import sys

    with clock_at("2026-03-01T12:00"):
        good = await create_grant(gql, debit="100.00")
        bad = await create_grant(gql, debit="100.00")
        await prepare(gql, "t1", "30.00", good["id"])
        await prepare(gql, "t2", "30.00", bad["id"])
        await _sql(f"UPDATE grant_spent_amount SET total_debit = 1 WHERE grant_id = {int(bad['id'])}")
    env = {**os.environ, "SETTLEGRAPH_DATABASE_URL": server.database_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "reconcile-grants", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    assert process.returncode == 1
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert [(line["grant"], line["consistent"]) for line in lines] == [(int(good["id"]), True), (int(bad["id"]), False)]
