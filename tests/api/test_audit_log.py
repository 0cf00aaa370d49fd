"""SPEC §10: the audit log through the API (ADMIN and AUDITOR only), and its tamper-evident hash chain: rows edited,
deleted, inserted or swapped in the database are named by auditVerification and by `settlegraph verify-audit`."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta

import pytest
from tortoise import Tortoise

from app.audit import chain
from tests.support.transfers import record, transfer

LOG = """query($f: AuditFilter, $first: Int, $after: String) {
  auditLog(filter: $f, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id at actor role operation target outcome code } } } }"""
VERIFY = "{ auditVerification { ok entriesChecked firstBrokenEntryId sealedThroughEntryId } }"
CREATE = """mutation($n: String!) { createSettlementModel(input: {name: $n, batchIntervalSeconds: 60}) {
  userErrors { code } } }"""


async def _some_history(gql) -> None:
    await gql(CREATE, {"n": "HOURLY"}, role="operator")
    await gql(CREATE, {"n": "HOURLY"}, role="operator")  # refused: the name exists
    await record(gql, transfer("t-1"), transfer("t-2"))
    await gql(CREATE, {"n": "DAILY"}, role="admin")


async def test_admin_and_auditor_read_the_log_with_filters_and_pages(gql):
    await _some_history(gql)
    for role in ("admin", "auditor"):
        log = (await gql(LOG, {"first": 2}, role=role))["auditLog"]
        assert log["totalCount"] == 4 and log["pageInfo"]["hasNextPage"]
        first = [e["node"] for e in log["edges"]]
        assert [(e["actor"], e["operation"], e["target"], e["outcome"]) for e in first] == [
            ("oscar-operator", "createSettlementModel", "HOURLY", "OK"),
            ("oscar-operator", "createSettlementModel", "HOURLY", "REFUSED")]
        assert first[1]["code"] == "DUPLICATE_NAME" and first[0]["role"] == "OPERATOR"
        rest = (await gql(LOG, {"first": 10, "after": log["pageInfo"]["endCursor"]}, role=role))["auditLog"]
        assert [e["node"]["operation"] for e in rest["edges"]] == ["recordTransfers", "createSettlementModel"]
    refused = (await gql(LOG, {"f": {"outcome": "REFUSED"}}, role="auditor"))["auditLog"]
    assert refused["totalCount"] == 1
    by_actor = (await gql(LOG, {"f": {"actor": "clearing-engine", "operation": "recordTransfers"}}))["auditLog"]
    assert by_actor["totalCount"] == 1
    at = by_actor["edges"][0]["node"]["at"]
    assert (await gql(LOG, {"f": {"from": at}}))["auditLog"]["totalCount"] >= 1
    assert (await gql(LOG, {"f": {"to": at}}))["auditLog"]["totalCount"] == 2
    assert (await gql(LOG, {"f": {"actor": "x" * 5000}}))["auditLog"]["totalCount"] == 0


@pytest.mark.parametrize("role", ["viewer", "operator", "settler", "ingest"])
async def test_other_roles_cannot_read_the_log(gql, role):
    for document in (LOG, VERIFY):
        body = await gql.raw(document, role=role)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_an_auditor_reads_everything_and_mutates_nothing(gql):
    await _some_history(gql)
    assert (await gql("{ settlementModels { name } batches { totalCount } }", role="auditor"))["batches"]
    body = await gql.raw(CREATE, {"n": "AUDITED"}, role="auditor")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def _sealed(gql) -> dict:
    await _some_history(gql)
    while await chain.seal(grace=timedelta(0)) is not None:
        pass
    verified = (await gql(VERIFY, role="auditor"))["auditVerification"]
    assert verified == {"ok": True, "entriesChecked": 4, "firstBrokenEntryId": None,
                        "sealedThroughEntryId": verified["sealedThroughEntryId"]}
    return verified


async def _ids() -> list[int]:
    rows = await Tortoise.get_connection("default").execute_query_dict("SELECT id FROM audit_entry ORDER BY id")
    return [int(r["id"]) for r in rows]


async def _sql(statement: str) -> None:
    await Tortoise.get_connection("default").execute_script(statement)


async def test_an_edited_entry_is_named(gql):
    await _sealed(gql)
    ids = await _ids()
    await _sql(f"UPDATE audit_entry SET outcome = 'OK' WHERE id = {ids[1]}")  # hide the refusal
    verified = (await gql(VERIFY))["auditVerification"]
    assert not verified["ok"] and verified["firstBrokenEntryId"] == str(ids[1])


async def test_a_removed_entry_is_named(gql):
    await _sealed(gql)
    ids = await _ids()
    await _sql(f"DELETE FROM audit_entry WHERE id = {ids[2]}")
    verified = (await gql(VERIFY))["auditVerification"]
    assert not verified["ok"] and verified["firstBrokenEntryId"] == str(ids[2])


async def test_swapped_entries_are_named(gql):
    await _sealed(gql)
    ids = await _ids()
    a, b = ids[0], ids[3]
    # Swap the two rows' contents (their places in the order), keeping the ids.
    await _sql(f"UPDATE audit_entry SET id = -1 WHERE id = {a}; UPDATE audit_entry SET id = {a} WHERE id = {b}; "
               f"UPDATE audit_entry SET id = {b} WHERE id = -1")
    verified = (await gql(VERIFY))["auditVerification"]
    assert not verified["ok"] and verified["firstBrokenEntryId"] == str(a)


async def test_a_rewritten_chain_hash_is_caught_too(gql):
    verified = await _sealed(gql)
    await _sql(f"UPDATE audit_entry_hash SET hash = '{'f' * 64}' WHERE entry_id = {verified['sealedThroughEntryId']}")
    assert not (await gql(VERIFY))["auditVerification"]["ok"]


async def test_unsealed_entries_wait_for_the_next_seal(gql):
    await _sealed(gql)
    await gql(CREATE, {"n": "LATER"}, role="operator")
    assert await chain.seal() is None  # younger than the grace period: not sealed yet
    assert await chain.seal(grace=timedelta(0)) is not None
    verified = (await gql(VERIFY))["auditVerification"]
    assert verified["ok"] and verified["entriesChecked"] == 5


async def test_the_verify_audit_command_exits_1_on_a_break(gql, server):
    await _sealed(gql)

    async def verify_audit() -> tuple[int, dict]:
        env = {**os.environ, "SETTLEGRAPH_DATABASE_URL": server.database_url, "SETTLEGRAPH_LOG_LEVEL": "CRITICAL"}
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "app.cli", "verify-audit", env=env,
                                                    stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        return proc.returncode or 0, json.loads(out.decode().strip().splitlines()[-1])

    code, found = await verify_audit()
    assert code == 0 and found["ok"] and found["entriesChecked"] == 4
    ids = await _ids()
    await _sql(f"UPDATE audit_entry SET actor = 'someone-else' WHERE id = {ids[0]}")
    code, found = await verify_audit()
    assert code == 1 and found["firstBrokenEntryId"] == ids[0]


async def test_a_seal_written_in_parts_chains_every_entry_once(gql, monkeypatch):
    """The sealer reads, chains and writes a seal's entries a part at a time (other requests run between parts):
    parts of 3 entries and seals of at most 5 give the same verified chain, with every entry in one seal."""
    monkeypatch.setattr(chain, "_SEAL_PART", 3)
    monkeypatch.setattr(chain, "MAX_SEAL", 5)
    await _some_history(gql)
    await _some_history(gql)  # 8 entries: a seal of 5 (parts of 3 and 2), then one of 3
    seals = []
    while (made := await chain.seal(grace=timedelta(0))) is not None:
        seals.append((made.first_entry_id, made.last_entry_id, made.entry_count))
    ids = await _ids()
    assert seals == [(ids[0], ids[4], 5), (ids[5], ids[7], 3)]
    verified = (await gql(VERIFY, role="auditor"))["auditVerification"]
    assert verified["ok"] and verified["entriesChecked"] == 8 and verified["sealedThroughEntryId"] == str(ids[7])
    hashed = await Tortoise.get_connection("default").execute_query_dict("SELECT COUNT(*) AS n FROM audit_entry_hash")
    assert int(hashed[0]["n"]) == 8
