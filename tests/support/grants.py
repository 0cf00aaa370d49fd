"""The grant operations as the API tests call them (through the real server), and a pinned clock."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from app.core import clock

ERRORS = "userErrors { code message field }"
GRANT_FIELDS = """id payerId payeeId interval debitAmount { value currency } receiveAmount { value currency }
  spentDebitAmount { value currency } spentReceiveAmount { value currency }
  totalSpentDebitAmount { value currency } totalSpentReceiveAmount { value currency }
  currentInterval { index start end }"""
PREPARED_FIELDS = """transferId state amount receiveAmount deliveredAmount sentAmount preparedAt committedAt
  interval { index start end } grant { id } transfer { transferId amount committedAt batch { name } }"""

CREATE_GRANT = f"""mutation($input: GrantInput!) {{
  createGrant(input: $input) {{ grant {{ {GRANT_FIELDS} }} {ERRORS} }} }}"""
PREPARE = f"""mutation($input: PrepareTransferInput!) {{
  prepareTransfer(input: $input) {{ preparedTransfer {{ {PREPARED_FIELDS} }} {ERRORS} }} }}"""
COMMIT = f"""mutation($id: String!, $delivered: Amount, $at: DateTime) {{
  commitTransfer(transferId: $id, deliveredAmount: $delivered, committedAt: $at) {{
    preparedTransfer {{ {PREPARED_FIELDS} }} {ERRORS} }} }}"""
ABORT = f"""mutation($id: String!, $sent: Amount, $reason: String) {{
  abortTransfer(transferId: $id, sentAmount: $sent, reason: $reason) {{
    preparedTransfer {{ {PREPARED_FIELDS} }} {ERRORS} }} }}"""
GRANT = f"""query($id: ID!) {{ grant(id: $id) {{ {GRANT_FIELDS}
  spentAmounts {{ transferId state interval {{ index }} transferDebitAmount transferReceiveAmount
    intervalDebitAmount intervalReceiveAmount totalDebitAmount totalReceiveAmount }} }} }}"""
RECONCILE = """mutation($id: ID!) { reconcileGrant(id: $id) { reconciliation { grantId consistent checkedTransfers
  checkedRecords issues { kind subject field expected recorded transferId intervalIndex } }
  userErrors { code message field } } }"""


def ts(text: str) -> str:
    """A wire DateTime from a short form, e.g. "2026-03-01T10:00"."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).isoformat()


@contextmanager
def clock_at(moment: str) -> Iterator[list[datetime]]:
    """Pin the server's clock (same process) at `moment`; move it by assigning holder[0]."""
    holder = [datetime.fromisoformat(ts(moment))]
    clock.set_source(lambda: holder[0])
    try:
        yield holder
    finally:
        clock.set_source(None)


async def create_grant(gql: Any, *, payer: str = "dfsp-a", payee: str | None = None, debit: str | None = None,
                       receive: str | None = None, currency: str = "USD", interval: str | None = None,
                       expect_error: str | None = None) -> dict[str, Any]:
    grant_input: dict[str, Any] = {"payerId": payer}
    if payee is not None:
        grant_input["payeeId"] = payee
    if debit is not None:
        grant_input["debitAmount"] = {"value": debit, "currency": currency}
    if receive is not None:
        grant_input["receiveAmount"] = {"value": receive, "currency": currency}
    if interval is not None:
        grant_input["interval"] = interval
    payload = (await gql(CREATE_GRANT, {"input": grant_input}, role="operator"))["createGrant"]
    return _checked(payload, "grant", expect_error)


async def prepare(gql: Any, transfer_id: str, amount: str, grant_id: str | None, *, at: str | None = None,
                  receive: str | None = None, payer: str = "dfsp-a", payee: str = "dfsp-b", currency: str = "USD",
                  expect_error: str | None = None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"transferId": transfer_id, "payerId": payer, "payeeId": payee, "amount": amount,
                            "currency": currency, **extra}
    if grant_id is not None:
        data["grantId"] = grant_id
    if receive is not None:
        data["receiveAmount"] = receive
    if at is not None:
        data["preparedAt"] = ts(at)
    payload = (await gql(PREPARE, {"input": data}, role="ingest"))["prepareTransfer"]
    return _checked(payload, "preparedTransfer", expect_error)


async def commit(gql: Any, transfer_id: str, delivered: str | None = None, *, at: str | None = None,
                 expect_error: str | None = None) -> dict[str, Any]:
    variables = {"id": transfer_id, "delivered": delivered, "at": ts(at) if at else None}
    payload = (await gql(COMMIT, variables, role="ingest"))["commitTransfer"]
    return _checked(payload, "preparedTransfer", expect_error)


async def abort(gql: Any, transfer_id: str, sent: str | None = None, *, expect_error: str | None = None,
                reason: str | None = None) -> dict[str, Any]:
    payload = (await gql(ABORT, {"id": transfer_id, "sent": sent, "reason": reason}, role="ingest"))["abortTransfer"]
    return _checked(payload, "preparedTransfer", expect_error)


async def grant(gql: Any, grant_id: str) -> dict[str, Any]:
    found = (await gql(GRANT, {"id": grant_id}, role="viewer"))["grant"]
    assert found is not None
    return dict(found)


async def reconcile(gql: Any, grant_id: str) -> dict[str, Any]:
    payload = (await gql(RECONCILE, {"id": grant_id}, role="operator"))["reconcileGrant"]
    assert payload["userErrors"] == [], payload
    return dict(payload["reconciliation"])


def value(money: dict[str, str] | None) -> str | None:
    return None if money is None else money["value"]


def _checked(payload: dict[str, Any], key: str, expect_error: str | None) -> dict[str, Any]:
    if expect_error is None:
        assert payload["userErrors"] == [], payload["userErrors"]
        return dict(payload[key])
    assert payload[key] is None, payload
    assert [e["code"] for e in payload["userErrors"]] == [expect_error], payload["userErrors"]
    return dict(payload["userErrors"][0])
