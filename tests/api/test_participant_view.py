"""SPEC §10: a PARTICIPANT caller (a DFSP's own staff) reads its own figures only.

A walk over every query field of the schema, as the participant, over data where other participants trade among
themselves with distinctive amounts: no answer may hold another participant's id (but as the counterparty of its
own transfers) or amount, and every per-participant row is its own. Gross totals, which sum everyone's amounts,
are withheld with FORBIDDEN. It cannot mutate, nor read the audit log."""
from __future__ import annotations

import json
from typing import Any

import pytest
from graphql import (
    GraphQLNonNull,
    GraphQLObjectType,
    get_named_type,
    is_leaf_type,
)

from graphql_schema.schema import schema
from tests.support.transfers import record, transfer

ME, COUNTERPARTY = "dfsp-p", "dfsp-c"
SECRET_IDS = ["dfsp-x", "dfsp-y", "sec-1", "sec-2", "sec-prep"]
SECRET_AMOUNTS = ["777.77", "123.45", "55.55", "999.99", "654.32", "901.22", "915.22"]
WITHHELD = {"byStatus", "byCurrency"}
DAY = {"unit": "DAY", "start": "2026-03-02T00:00:00Z", "end": "2026-03-03T00:00:00Z"}


async def _world(gql) -> dict[str, list[str]]:
    """Own transfers with a counterparty, and two other participants trading among themselves; grants of both;
    a settled matrix and an open one."""
    await record(gql, transfer("own-1", payer=ME, payee=COUNTERPARTY, amount="10.00"),
                 transfer("own-2", payer=COUNTERPARTY, payee=ME, amount="4.00"),
                 transfer("sec-1", payer="dfsp-x", payee="dfsp-y", amount="777.77"),
                 transfer("sec-2", payer="dfsp-y", payee="dfsp-x", amount="123.45"))
    grant = """mutation($i: GrantInput!) { createGrant(input: $i) { grant { id } userErrors { code } } }"""
    mine = (await gql(grant, {"i": {"payerId": ME, "debitAmount": {"value": "50.00", "currency": "USD"}}}))
    theirs = (await gql(grant, {"i": {"payerId": "dfsp-x", "debitAmount": {"value": "999.99", "currency": "USD"}}}))
    grant_ids = [mine["createGrant"]["grant"]["id"], theirs["createGrant"]["grant"]["id"]]
    prepare = """mutation($i: PrepareTransferInput!) { prepareTransfer(input: $i) { userErrors { code } } }"""
    for transfer_id, payer, payee, amount, grant_id in (("own-prep", ME, COUNTERPARTY, "5.00", grant_ids[0]),
                                                         ("sec-prep", "dfsp-x", "dfsp-y", "55.55", grant_ids[1])):
        answer = await gql(prepare, {"i": {"transferId": transfer_id, "payerId": payer, "payeeId": payee,
                                          "amount": amount, "currency": "USD", "grantId": grant_id,
                                          "preparedAt": "2026-03-02T14:00:00Z"}}, role="ingest")
        assert not answer["prepareTransfer"]["userErrors"], answer
    create = """mutation($p: PeriodInput!) { createMatrix(input: {model: "DEFAULT", period: $p}) { matrix { id } } }"""
    settled = (await gql(create, {"p": DAY}))["createMatrix"]["matrix"]["id"]
    await gql("mutation($id: ID!) { requestSettlement(id: $id) { userErrors { code } } }", {"id": settled},
              role="operator")
    await gql("mutation($id: ID!) { settleMatrix(id: $id) { userErrors { code } } }", {"id": settled},
              role="settler")
    open_matrix = (await gql(create, {"p": DAY}))["createMatrix"]["matrix"]["id"]
    return {"matrix": [settled, open_matrix], "grant": grant_ids}


# Literal arguments the walk gives where a field takes them.
LITERALS = {
    "first": "5",
    "period": '{unit: DAY, start: "2026-03-02T00:00:00Z", end: "2026-03-03T00:00:00Z"}',
}


def _selection(type_: GraphQLObjectType, depth: int) -> str:
    """Every field of the type that needs no argument we cannot give, down to `depth` levels."""
    parts = []
    for name, field in type_.fields.items():
        if name in WITHHELD:
            continue
        arguments = []
        for arg_name, arg in field.args.items():
            if arg_name in LITERALS:
                arguments.append(f"{arg_name}: {LITERALS[arg_name]}")
            elif isinstance(arg.type, GraphQLNonNull):
                break  # an argument the walk cannot give: the field is walked from the root instead
        else:
            named = get_named_type(field.type)
            head = name + (f"({', '.join(arguments)})" if arguments else "")
            if is_leaf_type(named):
                parts.append(head)
            elif depth > 0 and isinstance(named, GraphQLObjectType):
                inner = _selection(named, depth - 1)
                if inner:
                    parts.append(f"{head} {{ {inner} }}")
    return " ".join(parts)


def _root_calls(world: dict[str, list[str]]) -> list[str]:
    calls = []
    query = schema._schema.query_type
    assert query is not None
    given = {
        "settlementModel": ['name: "DEFAULT"'],
        "batch": [f'ref: {{transferId: "{t}"}}' for t in ("own-1", "sec-1")],
        "transfer": [f'transferId: "{t}"' for t in ("own-1", "own-2", "sec-1", "sec-2")],
        "participant": [f'id: "{p}"' for p in (ME, COUNTERPARTY, "dfsp-x")],
        "grant": [f'id: "{g}"' for g in world["grant"]],
        "preparedTransfer": [f'transferId: "{t}"' for t in ("own-prep", "sec-prep")],
        "matrix": [f'id: "{m}"' for m in world["matrix"]],
    }
    for name, field in query.fields.items():
        if name in ("auditLog", "auditVerification"):
            continue
        inner = _selection(get_named_type(field.type), 3)  # type: ignore[arg-type]
        for arguments in given.get(name, [""]):
            extra = "first: 5" if "first" in field.args else ""
            args = ", ".join(a for a in (arguments, extra) if a)
            calls.append(f"{{ {name}{f'({args})' if args else ''} {{ {inner} }} }}")
    return calls


def _rows(value: Any) -> list[dict]:
    found = []
    if isinstance(value, dict):
        if "participantId" in value:
            found.append(value)
        for item in value.values():
            found += _rows(item)
    elif isinstance(value, list):
        for item in value:
            found += _rows(item)
    return found


async def test_every_query_field_shows_a_participant_its_own_figures_only(gql):
    world = await _world(gql)
    calls = _root_calls(world)
    assert len(calls) >= 15
    for document in calls:
        body = await gql.raw(document, role="participant")
        assert not body.get("errors"), (document, body.get("errors"))
        text = json.dumps(body["data"])
        leaked = [s for s in SECRET_IDS + SECRET_AMOUNTS if s in text]
        assert not leaked, (leaked, document, text[:2000])
        assert all(row["participantId"] == ME for row in _rows(body["data"])), (document, text[:2000])
    # The same walk as an ADMIN sees the others: the secrets are really there to be hidden.
    admin = json.dumps([(await gql.raw(d, role="admin"))["data"] for d in calls])
    assert all(s in admin for s in ("dfsp-x", "777.77", "sec-prep", "999.99"))


async def test_own_figures_are_there(gql):
    world = await _world(gql)
    me = (await gql(f'{{ participant(id: "{ME}") {{ positions {{ currency unsettledNet settledNet }} }} }}',
                    role="participant"))["participant"]
    assert me["positions"] == [{"currency": "USD", "unsettledNet": "0.00", "settledNet": "-6.00"}]
    settled = world["matrix"][0]
    report = (await gql(f'{{ matrix(id: "{settled}") {{ settlement {{ participants {{ participantId net }} }} '
                        "participants { participantId debit credit } } }", role="participant"))["matrix"]
    assert report["settlement"]["participants"] == [{"participantId": ME, "net": "-6.00"}]
    assert report["participants"] == [{"participantId": ME, "debit": "10.00", "credit": "4.00"}]
    grant = (await gql(f'{{ grant(id: "{world["grant"][0]}") {{ payerId spentDebitAmount {{ value }} }} }}',
                       role="participant"))["grant"]
    assert grant["payerId"] == ME


@pytest.mark.parametrize("field", sorted(WITHHELD))
async def test_gross_totals_are_withheld(gql, field):
    world = await _world(gql)
    body = await gql.raw(f'{{ matrix(id: "{world["matrix"][1]}") {{ id {field} {{ currency debit }} }} }}',
                         role="participant")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "withheld" in body["errors"][0]["message"]


async def test_a_participant_mutates_nothing_and_reads_no_audit_log(gql):
    body = await gql.raw('mutation { closeBatch(ref: {transferId: "own-1"}) { userErrors { code } } }',
                         role="participant")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await gql.raw("{ auditLog { totalCount } }", role="participant")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
