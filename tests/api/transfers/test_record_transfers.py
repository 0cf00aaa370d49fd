"""recordTransfers (SPEC §1, §4): outcomes, batch keys and names, live totals, idempotency, bad input."""
from __future__ import annotations

from decimal import Decimal

import pytest

from tests.support.transfers import BATCH, RECORD, record, transfer

CREATE_MODEL = """
mutation($i: SettlementModelInput!) {
  createSettlementModel(input: $i) { model { name } userErrors { code message field } }
}
"""


async def test_transfers_file_into_one_batch_with_live_totals(gql):
    out = await record(gql,
                       transfer("t1", "dfsp-a", "dfsp-b", "100.50"),
                       transfer("t2", "dfsp-b", "dfsp-c", "40.25", committed_at="2026-03-02T14:14:59.999+00:00"),
                       transfer("t3", "dfsp-c", "dfsp-a", "0.01", committed_at="2026-03-02T16:05:00+02:00"))
    assert (out["recorded"], out["duplicates"], out["rejected"]) == (3, 0, 0)
    names = {r["batch"]["name"] for r in out["results"]}
    assert names == {"DEFAULT.USD.2026.03.02.14.00.001"}
    batch = (await gql(BATCH, {"ref": {"name": "DEFAULT.USD.2026.03.02.14.00.001"}}))["batch"]
    assert batch["transferCount"] == 3 and batch["status"] == "OPEN" and batch["sequence"] == 1
    assert batch["windowStart"] == "2026-03-02T14:00:00+00:00" and batch["windowEnd"] == "2026-03-02T14:15:00+00:00"
    accounts = {a["participantId"]: a for a in batch["accounts"]}
    assert accounts["dfsp-a"] == {"participantId": "dfsp-a", "currency": "USD", "debit": "100.50",
                                  "credit": "0.01", "net": "-100.49"}
    assert accounts["dfsp-b"]["net"] == "60.25" and accounts["dfsp-c"]["net"] == "40.24"
    assert sum(Decimal(a["net"]) for a in batch["accounts"]) == 0
    assert batch["history"] == [{"from": None, "to": "OPEN", "actor": "clearing-engine", "reason": "created"}]


async def test_keys_split_by_model_currency_segment_and_window(gql):
    created = await gql(CREATE_MODEL, {"i": {"name": "FAST", "batchIntervalSeconds": 1, "currencies": ["EUR", "JPY"],
                                            "segmentBy": ["transferType"]}}, role="operator")
    assert created["createSettlementModel"]["userErrors"] == []
    attrs = [{"key": "transferType", "value": "P2P"}]
    out = await record(
        gql,
        transfer("a", currency="EUR", amount="1.5", settlementModel="FAST", attributes=attrs,
                 committed_at="2026-03-02T14:05:07.250Z"),
        transfer("b", currency="EUR", amount="2", settlementModel="FAST", attributes=attrs,
                 committed_at="2026-03-02T14:05:07.999Z"),
        transfer("c", currency="EUR", settlementModel="FAST", attributes=attrs, committed_at="2026-03-02T14:05:08Z"),
        transfer("d", currency="EUR", settlementModel="FAST", committed_at="2026-03-02T14:05:08Z",
                 attributes=[{"key": "transferType", "value": "MERCHANT"}]),
        transfer("e", currency="JPY", amount="500", settlementModel="FAST", attributes=attrs,
                 committed_at="2026-03-02T14:05:08Z"),
        transfer("f", currency="EUR", committed_at="2026-03-02T14:05:08Z"),
    )
    names = [r["batch"]["name"] for r in out["results"]]
    assert names == [
        "FAST.EUR.P2P.2026.03.02.14.05.07.001", "FAST.EUR.P2P.2026.03.02.14.05.07.001",
        "FAST.EUR.P2P.2026.03.02.14.05.08.001", "FAST.EUR.MERCHANT.2026.03.02.14.05.08.001",
        "FAST.JPY.P2P.2026.03.02.14.05.08.001", "DEFAULT.EUR.2026.03.02.14.00.001",
    ]
    batch = (await gql(BATCH, {"ref": {"transferId": "a"}}))["batch"]
    assert batch["segment"] == attrs and batch["model"] == {"name": "FAST"}
    assert {a["participantId"]: a["debit"] for a in batch["accounts"]}["dfsp-a"] == "3.50"


async def test_duplicates_and_conflicts(gql):
    first = await record(gql, transfer("t1", amount="10"))
    batch_name = first["results"][0]["batch"]["name"]
    again = await record(gql, transfer("t1", amount="10.00"), transfer("t1", amount="11"), transfer("t2"),
                         transfer("t2"), transfer("t2", payee="dfsp-z"))
    outcomes = [(r["outcome"], (r["error"] or {}).get("code")) for r in again["results"]]
    assert outcomes == [("DUPLICATE", None), ("REJECTED", "TRANSFER_CONFLICT"), ("RECORDED", None),
                        ("DUPLICATE", None), ("REJECTED", "TRANSFER_CONFLICT")]
    assert again["results"][0]["batch"]["name"] == batch_name
    assert again["results"][3]["batch"]["name"] == batch_name
    batch = (await gql(BATCH, {"ref": {"name": batch_name}}))["batch"]
    assert batch["transferCount"] == 2
    assert {a["participantId"]: a["debit"] for a in batch["accounts"]}["dfsp-a"] == "20.00"


async def test_closed_batch_sends_late_transfers_to_the_next_sequence(gql):
    await record(gql, transfer("t1"))
    closed = await gql("""mutation { closeBatch(ref: {transferId: "t1"}, reason: "cut-off") {
        batch { name status history { from to actor reason } } userErrors { code } } }""", role="operator")
    batch = closed["closeBatch"]["batch"]
    assert batch["status"] == "CLOSED"
    assert batch["history"][-1] == {"from": "OPEN", "to": "CLOSED", "actor": "oscar-operator", "reason": "cut-off"}
    late = await record(gql, transfer("t2", committed_at="2026-03-02T14:10:00Z"),
                        transfer("t3", committed_at="2026-03-02T14:11:00Z"))
    assert {r["batch"]["name"] for r in late["results"]} == {"DEFAULT.USD.2026.03.02.14.00.002"}
    again = await gql("""mutation { closeBatch(ref: {name: "DEFAULT.USD.2026.03.02.14.00.001"}) {
        batch { name } userErrors { code message } } }""", role="operator")
    assert again["closeBatch"]["batch"] is None
    error = again["closeBatch"]["userErrors"][0]
    assert error["code"] == "INVALID_TRANSITION" and "CLOSED" in error["message"]
    first = (await gql(BATCH, {"ref": {"name": "DEFAULT.USD.2026.03.02.14.00.001"}}))["batch"]
    assert first["transferCount"] == 1


BAD = [
    ("malformed amount", {"amount": "12,50"}, "VALIDATION"),
    ("exponent amount", {"amount": "1.2505E+3"}, "VALIDATION"),
    ("too many decimals", {"amount": "1.001"}, "AMOUNT_SCALE"),
    ("JPY decimals", {"amount": "1.5", "currency": "JPY"}, "AMOUNT_SCALE"),
    ("zero", {"amount": "0"}, "AMOUNT_NOT_POSITIVE"),
    ("negative", {"amount": "-1.00"}, "AMOUNT_NOT_POSITIVE"),
    ("beyond range", {"amount": "99999999999999999"}, "AMOUNT_OUT_OF_RANGE"),
    ("unknown currency", {"currency": "XYZ"}, "UNKNOWN_CURRENCY"),
    ("payer is payee", {"payeeId": "dfsp-a"}, "SAME_PARTICIPANT"),
    ("unknown model", {"settlementModel": "NOPE"}, "UNKNOWN_MODEL"),
    ("empty id", {"transferId": ""}, "VALIDATION"),
    ("oversized id", {"transferId": "x" * 129}, "VALIDATION"),
    ("blank payer", {"payerId": "   "}, "VALIDATION"),
    ("future", {"committedAt": "2099-01-01T00:00:00Z"}, "VALIDATION"),
    ("ancient", {"committedAt": "1969-12-31T23:59:59Z"}, "VALIDATION"),
    ("self refund", {"refundOf": "bad"}, "VALIDATION"),
]


@pytest.mark.parametrize(("label", "change", "code"), BAD, ids=[b[0] for b in BAD])
async def test_bad_transfers_are_rejected_alone(gql, label, change, code):
    bad = transfer("bad", **{k: v for k, v in change.items() if k not in {"transferId"}})
    if "transferId" in change:
        bad["transferId"] = change["transferId"]
    out = await record(gql, transfer("good-1"), bad, transfer("good-2"))
    assert [r["outcome"] for r in out["results"]] == ["RECORDED", "REJECTED", "RECORDED"]
    assert out["results"][1]["error"]["code"] == code
    assert out["results"][1]["error"]["field"][:2] == ["transfers", "1"]
    assert out["results"][1]["batch"] is None
    assert (await gql("""{ transfer(transferId: "bad") { transferId } }"""))["transfer"] is None


async def test_inactive_model_and_refused_currency(gql):
    await gql(CREATE_MODEL, {"i": {"name": "EURO", "batchIntervalSeconds": 60, "currencies": ["EUR"]}},
              role="operator")
    out = await record(gql, transfer("x1", settlementModel="EURO"))
    assert out["results"][0]["error"]["code"] == "CURRENCY_NOT_ACCEPTED"
    await gql("""mutation { setSettlementModelActive(name: "EURO", active: false) { model { isActive } } }""",
              role="operator")
    out = await record(gql, transfer("x2", settlementModel="EURO", currency="EUR"))
    assert out["results"][0]["error"]["code"] == "INACTIVE_MODEL"


async def test_missing_segment_attribute_is_rejected(gql):
    await gql(CREATE_MODEL, {"i": {"name": "SEG", "batchIntervalSeconds": 60, "segmentBy": ["channel"]}},
              role="operator")
    out = await record(gql, transfer("s1", settlementModel="SEG"),
                       transfer("s2", settlementModel="SEG", attributes=[{"key": "channel", "value": "a.b"}]))
    assert [r["error"]["code"] for r in out["results"]] == ["VALIDATION", "VALIDATION"]


async def test_more_than_5000_transfers_write_nothing(gql):
    transfers = [transfer(f"t{i}") for i in range(5001)]
    data = await gql(RECORD, {"t": transfers}, role="ingest")
    payload = data["recordTransfers"]
    assert payload["recorded"] == 0 and payload["userErrors"][0]["code"] == "TOO_MANY_TRANSFERS"
    assert (await gql("{ batches { totalCount } }"))["batches"]["totalCount"] == 0


async def test_timestamp_without_offset_is_a_clear_error_and_writes_nothing(gql):
    body = await gql.raw(RECORD, {"t": [transfer("t1"), transfer("t2", committed_at="2026-03-02T14:05:00")]},
                         role="ingest")
    assert body["data"] is None
    assert "offset" in body["errors"][0]["message"] and body["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert (await gql("{ batches { totalCount } }"))["batches"]["totalCount"] == 0


async def test_float_amount_is_refused_on_the_wire(gql):
    body = await gql.raw(RECORD, {"t": [transfer("t1", amount=10.5)]}, role="ingest")
    assert body["data"] is None and "decimal string" in body["errors"][0]["message"]


async def test_participants_show_live_unsettled_net(gql):
    await record(gql, transfer("t1", "p1", "p2", "5.00"), transfer("t2", "p2", "p3", "2.00"),
                 transfer("t3", "p1", "p3", "100", currency="JPY"))
    data = await gql("{ participants { id positions { currency unsettledNet settledNet settlementBalance } } }")
    positions = {p["id"]: {x["currency"]: x["unsettledNet"] for x in p["positions"]} for p in data["participants"]}
    assert positions == {"p1": {"USD": "-5.00", "JPY": "-100"}, "p2": {"USD": "3.00"},
                         "p3": {"USD": "2.00", "JPY": "100"}}
    one = await gql("""{ participant(id: "p2") { id positions { currency unsettledNet } } }""")
    assert one["participant"] == {"id": "p2", "positions": [{"currency": "USD", "unsettledNet": "3.00"}]}
    assert (await gql("""{ participant(id: "nobody") { id } }"""))["participant"] is None
