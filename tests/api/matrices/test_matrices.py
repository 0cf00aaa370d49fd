"""Settlement matrices (SPEC §6): criteria, static membership, live totals, checksum, reports."""
from __future__ import annotations

import pytest

from tests.support.matrices import (
    ADD,
    CREATE,
    CREATE_STATIC,
    REMOVE,
    by_participant,
    check_invariants,
    command,
    create_matrix,
    create_model,
    matrix,
    net_sum,
    period,
)
from tests.support.transfers import record, transfer

T1 = "2026-03-02T14:05:10+00:00"
T2 = "2026-03-02T14:06:20+00:00"
T3 = "2026-03-02T14:59:59+00:00"
LATER = "2026-03-02T15:00:00+00:00"


async def test_dynamic_matrix_totals_are_live(gql):
    await create_model(gql, "RTGS", 60)
    await record(gql, transfer("t1", "a", "b", "10.00", committed_at=T1, settlementModel="RTGS"),
                 transfer("t2", "b", "c", "4.50", committed_at=T2, settlementModel="RTGS"))
    created = await create_matrix(gql)
    assert created["type"] == "DYNAMIC" and created["status"] == "OPEN"
    assert created["criteria"]["period"] == {"unit": "HOUR", "start": "2026-03-02T14:00:00+00:00",
                                             "end": "2026-03-02T15:00:00+00:00"}
    assert created["batchCount"] == 2
    assert by_participant(created["participants"]) == {("a", "USD"): "-10.00", ("b", "USD"): "5.50",
                                                       ("c", "USD"): "4.50"}
    assert created["settleable"] == created["participants"]
    assert created["byStatus"] == [{"status": "OPEN", "currency": "USD", "batchCount": 2, "debit": "14.50",
                                    "credit": "14.50"}]
    assert created["byCurrency"] == [{"currency": "USD", "batchCount": 2, "debit": "14.50", "credit": "14.50"}]

    # A transfer recorded later, in a new window of the period, joins at once; one outside does not.
    await record(gql, transfer("t3", "c", "a", "1.00", committed_at=T3, settlementModel="RTGS"),
                 transfer("t4", "c", "a", "7.00", committed_at=LATER, settlementModel="RTGS"))
    now = await matrix(gql, created["id"])
    assert now["batchCount"] == 3
    assert by_participant(now["participants"]) == {("a", "USD"): "-9.00", ("b", "USD"): "5.50",
                                                   ("c", "USD"): "3.50"}
    assert now["checksum"] != created["checksum"]
    assert net_sum(now["participants"]) == 0
    again = await matrix(gql, created["id"])
    assert again["checksum"] == now["checksum"]

    # A dispute moves the batch out of the settleable part, not out of the matrix.
    disputed = await gql("""mutation { disputeBatch(ref: {transferId: "t1"}) { batch { status } } }""",
                         role="operator")
    assert disputed["disputeBatch"]["batch"]["status"] == "IN_DISPUTE"
    now = await matrix(gql, created["id"])
    assert now["batchCount"] == 3
    assert by_participant(now["settleable"]) == {("a", "USD"): "1.00", ("b", "USD"): "-4.50",
                                                 ("c", "USD"): "3.50"}
    assert {(s["status"], s["batchCount"]) for s in now["byStatus"]} == {("OPEN", 2), ("IN_DISPUTE", 1)}
    assert now["checksum"] != again["checksum"]
    await check_invariants(gql)


async def test_criteria_currencies_segment_and_statuses(gql):
    await create_model(gql, "SEG", 60, segmentBy=["transferType"])
    p2p = [{"key": "transferType", "value": "P2P"}]
    await record(gql, transfer("t1", "a", "b", "1.00", committed_at=T1, settlementModel="SEG", attributes=p2p),
                 transfer("t2", "a", "b", "2.00", "EUR", committed_at=T1, settlementModel="SEG", attributes=p2p),
                 transfer("t3", "a", "b", "3.00", committed_at=T1, settlementModel="SEG",
                          attributes=[{"key": "transferType", "value": "B2B"}]))
    usd_p2p = await create_matrix(gql, "SEG", currencies=["USD"], segment=p2p)
    assert usd_p2p["batchCount"] == 1 and usd_p2p["participants"][0]["debit"] == "1.00"
    assert usd_p2p["criteria"]["segment"] == p2p and usd_p2p["criteria"]["currencies"] == ["USD"]
    everything = await create_matrix(gql, "SEG")
    assert everything["batchCount"] == 3
    assert {(c["currency"], c["batchCount"], c["debit"]) for c in everything["byCurrency"]} == {
        ("USD", 2, "4.00"), ("EUR", 1, "2.00")}
    closed_only = await create_matrix(gql, "SEG", batchStatuses=["CLOSED"])
    assert closed_only["batchCount"] == 0 and closed_only["participants"] == []
    await gql("""mutation { closeBatch(ref: {transferId: "t3"}) { batch { status } } }""", role="operator")
    assert (await matrix(gql, closed_only["id"]))["batchCount"] == 1
    segments = await gql("""query($p: PeriodInput!) { settlementModel(name: "SEG") { segments(period: $p) {
        currency values { key value } batchCount } } }""", {"p": period(usd_p2p["criteria"]["period"]["start"],
                                                                          usd_p2p["criteria"]["period"]["end"])})
    assert len(segments["settlementModel"]["segments"]) == 3


@pytest.mark.parametrize(("unit", "start", "end", "code"), [
    ("SECOND", "2026-03-02T14:00:00+00:00", "2026-03-02T15:00:00+00:00", "PERIOD_TOO_FINE"),
    ("HOUR", "2026-03-02T14:30:00+00:00", "2026-03-02T15:00:00+00:00", "PERIOD_MISALIGNED"),
    ("DAY", "2026-03-02T00:00:00+00:00", "2026-03-02T12:00:00+00:00", "PERIOD_MISALIGNED"),
    ("HOUR", "2026-03-02T15:00:00+00:00", "2026-03-02T14:00:00+00:00", "VALIDATION"),
])
async def test_period_rules(gql, unit, start, end, code):
    await create_model(gql, "RTGS", 60)
    data = await gql(CREATE, {"i": {"model": "RTGS", "period": period(start, end, unit)}}, role="operator")
    assert data["createMatrix"]["matrix"] is None
    assert data["createMatrix"]["userErrors"][0]["code"] == code
    assert data["createMatrix"]["userErrors"][0]["field"][:2] == ["input", "period"]


async def test_bad_criteria(gql):
    await create_model(gql, "SEG", 60, segmentBy=["transferType"])
    cases = [
        ({"model": "NOPE"}, "NOT_FOUND"),
        ({"model": "SEG", "currencies": ["XXX1"]}, "UNKNOWN_CURRENCY"),
        ({"model": "SEG", "segment": [{"key": "region", "value": "EU"}]}, "VALIDATION"),
    ]
    for extra, code in cases:
        data = await gql(CREATE, {"i": {"period": period("2026-03-02T14:00:00+00:00", "2026-03-02T15:00:00+00:00"),
                                        **extra}}, role="operator")
        assert data["createMatrix"]["userErrors"][0]["code"] == code, extra
    assert (await gql("{ matrices { totalCount } }"))["matrices"]["totalCount"] == 0


async def test_static_matrix_membership(gql):
    out = await record(gql, transfer("t1", "a", "b", "1.00", committed_at=T1),
                       transfer("t2", "a", "b", "2.00", committed_at=LATER))
    b1, b2 = (r["batch"]["id"] for r in out["results"])
    created = (await gql(CREATE_STATIC, {"b": [b1]}, role="operator"))["createStaticMatrix"]
    m = created["matrix"]
    assert m["type"] == "STATIC" and m["criteria"] is None and m["batchCount"] == 1
    added = await command(gql, ADD, "addMatrixBatches", id=m["id"], b=[b1, b2])
    assert added["matrix"]["batchCount"] == 2
    assert [(s["batch"]["id"], s["reason"]) for s in added["skipped"]] == [(b1, "already in the matrix")]
    removed = await command(gql, REMOVE, "removeMatrixBatches", id=m["id"], b=[b1])
    assert removed["matrix"]["batchCount"] == 1 and removed["matrix"]["participants"][0]["debit"] == "2.00"
    missing = await command(gql, ADD, "addMatrixBatches", id=m["id"], b=["999999"])
    assert missing["userErrors"][0]["code"] == "NOT_FOUND"
    unknown = (await gql(CREATE_STATIC, {"b": [b1, "424242"]}, role="operator"))["createStaticMatrix"]
    assert unknown["userErrors"][0]["code"] == "NOT_FOUND"
    assert (await gql("{ matrices { totalCount } }"))["matrices"]["totalCount"] == 1
    dynamic = await create_matrix(gql, "DEFAULT", unit="DAY", start="2026-03-02T00:00:00+00:00",
                                  end="2026-03-03T00:00:00+00:00")
    refused = await command(gql, ADD, "addMatrixBatches", id=dynamic["id"], b=[b1])
    assert refused["userErrors"][0]["code"] == "VALIDATION"


async def test_batch_knows_its_matrices_and_in_any_matrix(gql):
    out = await record(gql, transfer("t1", committed_at=T1), transfer("t2", committed_at=LATER),
                       transfer("t3", committed_at="2026-03-05T10:00:00+00:00"))
    b1, b2, b3 = (r["batch"]["id"] for r in out["results"])
    dynamic = await create_matrix(gql, "DEFAULT", start="2026-03-02T14:00:00+00:00", end="2026-03-02T16:00:00+00:00")
    static = (await gql(CREATE_STATIC, {"b": [b2]}, role="operator"))["createStaticMatrix"]["matrix"]
    data = await gql("""query($r: BatchRef!) { batch(ref: $r) { matrices { id type } ownerMatrix { id } } }""",
                     {"r": {"id": b2}})
    assert [m["id"] for m in data["batch"]["matrices"]] == sorted([dynamic["id"], static["id"]], key=int)
    assert data["batch"]["ownerMatrix"] is None
    outside = await gql("""{ batches(filter: {inAnyMatrix: false}) { totalCount edges { node { id } } } }""")
    assert [e["node"]["id"] for e in outside["batches"]["edges"]] == [b3]
    inside = await gql("""{ batches(filter: {inAnyMatrix: true}) { totalCount } }""")
    assert inside["batches"]["totalCount"] == 2
    assert b1 in [e["node"]["id"] for e in dynamic["batches"]["edges"]]
    listed = await gql("""{ matrices(statuses: [OPEN], first: 1) { totalCount edges { node { id } }
        pageInfo { hasNextPage endCursor } } }""")
    assert listed["matrices"]["totalCount"] == 2 and listed["matrices"]["pageInfo"]["hasNextPage"]
    rest = await gql("""query($a: String) { matrices(after: $a) { edges { node { id } } } }""",
                     {"a": listed["matrices"]["pageInfo"]["endCursor"]})
    assert [e["node"]["id"] for e in rest["matrices"]["edges"]] == [static["id"]]


async def test_roles(gql):
    body = await gql.raw(CREATE_STATIC, {"b": []}, role="viewer")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await gql.raw("""mutation { settleMatrix(id: "1") { userErrors { code } } }""", role="operator")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await gql.raw("""mutation { requestSettlement(id: "1") { userErrors { code } } }""", role="settler")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_rolled_up_hours_and_partial_edges_equal_the_batches(gql):
    """A DYNAMIC matrix reads whole hours from the hourly rollup and the partial hours from the batches; a
    STATIC matrix of the same batches sums the batches directly: both must agree, through status changes."""
    await create_model(gql, "RTGS", 60)
    times = ["14:20", "14:45", "14:59", "15:10", "15:50", "16:05", "16:40"]
    out = await record(gql, *(transfer(f"t{i}", "a" if i % 2 else "b", "c" if i % 3 else "d", f"{i + 1}.25",
                                        "EUR" if i == 4 else "USD", committed_at=f"2026-03-02T{t}:00+00:00",
                                        settlementModel="RTGS") for i, t in enumerate(times)))
    ids = [r["batch"]["id"] for r in out["results"]]
    dynamic = await create_matrix(gql, unit="MINUTE", start="2026-03-02T14:30:00+00:00",
                                  end="2026-03-02T16:15:00+00:00")
    static = (await gql(CREATE_STATIC, {"b": ids[1:6]}, role="operator"))["createStaticMatrix"]["matrix"]
    fields = ("batchCount", "participants", "settleable", "byStatus", "byCurrency")

    async def agree() -> None:
        left, right = await matrix(gql, dynamic["id"]), await matrix(gql, static["id"])
        assert {f: left[f] for f in fields} == {f: right[f] for f in fields}

    await agree()
    await gql("""mutation { closeBatch(ref: {transferId: "t3"}) { batch { status } } }""", role="operator")
    await gql("""mutation { disputeBatch(ref: {transferId: "t4"}) { batch { status } } }""", role="operator")
    await record(gql, transfer("late", "d", "a", "0.75", committed_at="2026-03-02T15:10:30+00:00",
                               settlementModel="RTGS"))
    late = await gql("""{ transfer(transferId: "late") { batch { id sequence } } }""")
    assert late["transfer"]["batch"]["sequence"] == 2
    await gql(ADD, {"id": static["id"], "b": [late["transfer"]["batch"]["id"]]}, role="operator")
    await agree()
    assert {(s["status"], s["currency"], s["batchCount"]) for s in (await matrix(gql, dynamic["id"]))["byStatus"]} == {
        ("OPEN", "USD", 4), ("CLOSED", "USD", 1), ("IN_DISPUTE", "EUR", 1)}
    await check_invariants(gql)
