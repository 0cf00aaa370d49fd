"""Settlement models (SPEC §3): creation, validation, one default, activation, change log."""
from __future__ import annotations

import pytest

CREATE = """mutation($i: SettlementModelInput!) { createSettlementModel(input: $i) {
  model { id name batchIntervalSeconds currencies segmentBy isActive isDefault }
  userErrors { code message field } } }"""
MODELS = "{ settlementModels { name isDefault isActive } }"


async def create(gql, **fields):
    return (await gql(CREATE, {"i": fields}, role="operator"))["createSettlementModel"]


async def test_create_and_read_back(gql):
    out = await create(gql, name="RTP-USD_1", batchIntervalSeconds=60, currencies=["USD", "EUR", "USD"],
                       segmentBy=["transferType", "scheme"])
    assert out["userErrors"] == []
    assert out["model"] | {"id": None} == {"id": None, "name": "RTP-USD_1", "batchIntervalSeconds": 60,
                                          "currencies": ["USD", "EUR"], "segmentBy": ["transferType", "scheme"],
                                          "isActive": True, "isDefault": False}
    one = await gql("""{ settlementModel(name: "RTP-USD_1") { name changes { action actor changes } } }""")
    change = one["settlementModel"]["changes"][0]
    assert change["action"] == "CREATE" and change["actor"] == "oscar-operator"
    assert (await gql("""{ settlementModel(name: "NONE") { name } }"""))["settlementModel"] is None


@pytest.mark.parametrize(("fields", "code", "field"), [
    ({"name": "lower", "batchIntervalSeconds": 60}, "VALIDATION", ["input", "name"]),
    ({"name": "A.B", "batchIntervalSeconds": 60}, "VALIDATION", ["input", "name"]),
    ({"name": "", "batchIntervalSeconds": 60}, "VALIDATION", ["input", "name"]),
    ({"name": "X" * 65, "batchIntervalSeconds": 60}, "VALIDATION", ["input", "name"]),
    ({"name": "ODD", "batchIntervalSeconds": 7}, "VALIDATION", ["input", "batchIntervalSeconds"]),
    ({"name": "ZERO", "batchIntervalSeconds": 0}, "VALIDATION", ["input", "batchIntervalSeconds"]),
    ({"name": "BIG", "batchIntervalSeconds": 172800}, "VALIDATION", ["input", "batchIntervalSeconds"]),
    ({"name": "CUR", "batchIntervalSeconds": 60, "currencies": ["USD", "XYZ"]}, "UNKNOWN_CURRENCY",
     ["input", "currencies", "1"]),
    ({"name": "SEG", "batchIntervalSeconds": 60, "segmentBy": ["a", "a"]}, "VALIDATION", ["input", "segmentBy", "1"]),
    ({"name": "DEFAULT", "batchIntervalSeconds": 60}, "DUPLICATE_NAME", ["input", "name"]),
])
async def test_invalid_models_are_refused_and_write_nothing(gql, fields, code, field):
    out = await create(gql, **fields)
    assert out["model"] is None
    assert out["userErrors"][0]["code"] == code and out["userErrors"][0]["field"] == field
    assert [m["name"] for m in (await gql(MODELS))["settlementModels"]] == ["DEFAULT"]


@pytest.mark.parametrize("interval", [1, 5, 60, 900, 3600, 86400, 43200, 1800])
async def test_intervals_dividing_a_day_are_accepted(gql, interval):
    assert (await create(gql, name=f"I{interval}", batchIntervalSeconds=interval))["userErrors"] == []


async def test_at_most_one_default(gql):
    out = await create(gql, name="NEWDEF", batchIntervalSeconds=3600, isDefault=True)
    assert out["model"]["isDefault"] is True
    models = {m["name"]: m["isDefault"] for m in (await gql(MODELS))["settlementModels"]}
    assert models == {"DEFAULT": False, "NEWDEF": True}
    recorded = await gql("""mutation { recordTransfers(transfers: [{transferId: "t", payerId: "a", payeeId: "b",
        amount: "1", currency: "USD", committedAt: "2026-03-02T14:05:00Z"}]) { results { batch { name } } } }""",
                         role="ingest")
    assert recorded["recordTransfers"]["results"][0]["batch"]["name"] == "NEWDEF.USD.2026.03.02.14.00.001"
    changes = await gql("""{ settlementModel(name: "DEFAULT") { changes { action } } }""")
    assert [c["action"] for c in changes["settlementModel"]["changes"]] == ["CREATE", "UNSET_DEFAULT"]


async def test_activation_toggles_and_is_logged(gql):
    toggle = """mutation($a: Boolean!) { setSettlementModelActive(name: "DEFAULT", active: $a) {
        model { isActive } userErrors { code } } }"""
    assert (await gql(toggle, {"a": False}, role="operator"))["setSettlementModelActive"]["model"]["isActive"] is False
    assert (await gql(toggle, {"a": True}, role="operator"))["setSettlementModelActive"]["model"]["isActive"] is True
    unknown = await gql("""mutation { setSettlementModelActive(name: "NOPE", active: true) {
        model { name } userErrors { code } } }""", role="operator")
    assert unknown["setSettlementModelActive"]["userErrors"][0]["code"] == "NOT_FOUND"
    changes = await gql("""{ settlementModel(name: "DEFAULT") { changes { action actor } } }""")
    assert [c["action"] for c in changes["settlementModel"]["changes"]] == ["CREATE", "DEACTIVATE", "ACTIVATE"]


async def test_segments_of_a_period(gql):
    await create(gql, name="SEG", batchIntervalSeconds=60, segmentBy=["transferType"])
    attrs = lambda v: [{"key": "transferType", "value": v}]  # noqa: E731
    await gql("""mutation($t: [TransferInput!]!) { recordTransfers(transfers: $t) { recorded } }""", {"t": [
        {"transferId": f"t{i}", "payerId": "a", "payeeId": "b", "amount": "1", "currency": c,
         "committedAt": f"2026-03-02T14:0{i}:00Z", "settlementModel": "SEG", "attributes": attrs(v)}
        for i, (c, v) in enumerate([("USD", "P2P"), ("USD", "P2P"), ("USD", "B2B"), ("EUR", "P2P")])]}, role="ingest")
    query = """query($p: PeriodInput!) { settlementModel(name: "SEG") { segments(period: $p) {
        currency values { key value } batchCount } } }"""
    data = await gql(query, {"p": {"unit": "HOUR", "start": "2026-03-02T14:00:00Z", "end": "2026-03-02T15:00:00Z"}})
    assert data["settlementModel"]["segments"] == [
        {"currency": "EUR", "values": [{"key": "transferType", "value": "P2P"}], "batchCount": 1},
        {"currency": "USD", "values": [{"key": "transferType", "value": "B2B"}], "batchCount": 1},
        {"currency": "USD", "values": [{"key": "transferType", "value": "P2P"}], "batchCount": 2},
    ]
    body = await gql.raw(query, {"p": {"unit": "SECOND", "start": "2026-03-02T14:00:00Z",
                                       "end": "2026-03-02T15:00:00Z"}})
    assert body["errors"][0]["extensions"]["code"] == "PERIOD_TOO_FINE"


async def test_defaults_created_at_once_leave_exactly_one_default(gql):
    import asyncio

    outs = await asyncio.gather(*(create(gql, name=f"D{i}", batchIntervalSeconds=60, isDefault=True)
                                  for i in range(12)))
    assert [o["userErrors"] for o in outs] == [[]] * 12
    models = (await gql(MODELS))["settlementModels"]
    assert len([m for m in models if m["isDefault"]]) == 1
    assert {m["name"] for m in models} >= {f"D{i}" for i in range(12)}
    again = await create(gql, name="D0", batchIntervalSeconds=60, isDefault=True)
    assert [e["code"] for e in again["userErrors"]] == ["DUPLICATE_NAME"]
