"""Reading batches: refs, filters, cursors, every field, and no N+1."""
from __future__ import annotations

import logging

import pytest

from tests.support.transfers import BATCH, record, transfer


async def test_batch_by_id_name_or_transfer(gql):
    out = await record(gql, transfer("t1"), transfer("t2", "dfsp-c", "dfsp-d"))
    batch_id, name = out["results"][0]["batch"]["id"], out["results"][0]["batch"]["name"]
    for ref in ({"id": batch_id}, {"name": name}, {"transferId": "t2"}):
        assert (await gql(BATCH, {"ref": ref}))["batch"]["name"] == name
    for ref in ({"id": "999999"}, {"name": "NOPE"}, {"transferId": "nope"}):
        assert (await gql(BATCH, {"ref": ref}))["batch"] is None


@pytest.mark.parametrize("ref", [{}, {"id": "1", "name": "x"}, {"name": "x", "transferId": "y"}])
async def test_batch_ref_needs_exactly_one_field(gql, ref):
    body = await gql.raw(BATCH, {"ref": ref})
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION"
    closed = await gql("""mutation($r: BatchRef!) { closeBatch(ref: $r) { batch { id } userErrors { code field } } }""",
                       {"r": ref}, role="operator")
    assert closed["closeBatch"]["userErrors"][0]["code"] == "VALIDATION"


async def test_close_unknown_batch_is_not_found(gql):
    data = await gql("""mutation { closeBatch(ref: {transferId: "ghost"}) { batch { id } userErrors { code } } }""",
                     role="operator")
    assert data["closeBatch"]["userErrors"][0]["code"] == "NOT_FOUND"


async def test_dispute_and_resolve(gql):
    await record(gql, transfer("t1"))
    disputed = await gql("""mutation { disputeBatch(ref: {transferId: "t1"}, reason: "DFSP complaint") {
        batch { status } userErrors { code } } }""", role="operator")
    assert disputed["disputeBatch"]["batch"]["status"] == "IN_DISPUTE"
    resolved = await gql("""mutation { resolveBatchDispute(ref: {transferId: "t1"}) {
        batch { status history { from to } } userErrors { code } } }""", role="operator")
    assert resolved["resolveBatchDispute"]["batch"]["status"] == "CLOSED"
    assert [h["to"] for h in resolved["resolveBatchDispute"]["batch"]["history"]] == ["OPEN", "IN_DISPUTE", "CLOSED"]


PAGE = """query($after: String, $f: BatchFilter) {
  batches(first: 3, after: $after, filter: $f) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { name } } } }"""


async def test_pages_and_filters(gql):
    transfers = [transfer(f"t{i}", committed_at=f"2026-03-02T{10 + i:02d}:05:00Z") for i in range(7)]
    transfers.append(transfer("e1", currency="EUR", committed_at="2026-03-02T10:05:00Z"))
    await record(gql, *transfers)
    seen, after = [], None
    while True:
        page = (await gql(PAGE, {"after": after}))["batches"]
        assert page["totalCount"] == 8
        seen += [e["node"]["name"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == 8
    window = {"currencies": ["USD"], "windowFrom": "2026-03-02T12:00:00Z", "windowTo": "2026-03-02T15:00:00Z",
              "statuses": ["OPEN"], "model": "DEFAULT"}
    page = (await gql(PAGE, {"f": window}))["batches"]
    assert page["totalCount"] == 3
    assert [e["node"]["name"] for e in page["edges"]] == [
        "DEFAULT.USD.2026.03.02.12.00.001", "DEFAULT.USD.2026.03.02.13.00.001", "DEFAULT.USD.2026.03.02.14.00.001"]
    nested = await gql("""{ settlementModel(name: "DEFAULT") { batches(filter: {currencies: ["EUR"]}) {
        totalCount edges { node { name transfers(first: 1) {
            totalCount edges { node { transferId amount } } } } } } } }""")
    batches = nested["settlementModel"]["batches"]
    assert batches["totalCount"] == 1
    assert batches["edges"][0]["node"]["transfers"]["edges"][0]["node"] == {"transferId": "e1", "amount": "10.00"}


async def test_transfers_of_a_batch_page_by_cursor(gql):
    await record(gql, *[transfer(f"t{i:02d}") for i in range(5)])
    query = """query($a: String) { batch(ref: {transferId: "t00"}) { transfers(first: 2, after: $a) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { transferId batch { name } } } } } }"""
    ids, after = [], None
    for _ in range(5):
        page = (await gql(query, {"a": after}))["batch"]["transfers"]
        ids += [e["node"]["transferId"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert ids == [f"t{i:02d}" for i in range(5)]


class _CountStatements(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


async def test_a_page_of_50_batches_with_accounts_and_models_takes_a_handful_of_statements(gql):
    transfers = [transfer(f"t{i}", f"p{i % 7}", f"q{i % 5}", committed_at=f"2026-03-0{1 + i // 24}T{i % 24:02d}:05:00Z")
                 for i in range(60)]
    await record(gql, *transfers)
    query = """{ batches(first: 50) { totalCount edges { node { name status transferCount model { name isDefault }
        accounts { participantId debit credit net } history { from to } } } } }"""
    counter = _CountStatements()
    db_log = logging.getLogger("tortoise.db_client")
    previous = db_log.level
    db_log.addHandler(counter)
    db_log.setLevel(logging.DEBUG)
    try:
        data = await gql(query, role="viewer")
    finally:
        db_log.removeHandler(counter)
        db_log.setLevel(previous)
    assert len(data["batches"]["edges"]) == 50
    assert all(len(e["node"]["accounts"]) == 2 for e in data["batches"]["edges"])
    # count + page + models + accounts + history (+ the API key needs none): a handful, not 100+
    assert 3 <= counter.count <= 6, counter.count  # (at least the page, accounts and models were read)
