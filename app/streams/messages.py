"""The wire formats of the event streams (SPEC §13), pure: no broker, no database.

In: a committed transfer, as JSON with the field names of SPEC §4 (transferId, payerId, payeeId, amount, currency,
committedAt, settlementModel, attributes, refundOf) or Mojaloop's TransferCommittedFulfiled names (transferId,
payerFspId, payeeFspId, amount as a string with currencyCode or as {amount, currency}, settlementModel,
completedTimestamp as epoch milliseconds or ISO 8601), bare or wrapped in a Mojaloop envelope ({"msgName": ...,
"payload": {...}}).

Out: the dead-letter message of a refused transfer event, and the messages an outbox row expands into.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.batches.transfers import TransferRequest
from app.core import errors
from app.core.errors import DomainError

MSG_ID = "Nats-Msg-Id"  # JetStream drops a message whose id it saw within the stream's duplicate window


def decode_transfer(data: bytes) -> TransferRequest:
    """A transfer event's TransferRequest; DomainError (BAD_REQUEST: not a JSON object, VALIDATION: a field missing
    or malformed) when it cannot be one. The recording core validates the rest (amount, currency, model...)."""
    try:
        body = json.loads(data, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DomainError(errors.BAD_REQUEST, f"the message is not JSON: {exc}") from None
    if isinstance(body, dict) and isinstance(body.get("payload"), dict) and "transferId" not in body:
        body = body["payload"]  # a Mojaloop envelope
    if not isinstance(body, dict):
        raise DomainError(errors.BAD_REQUEST, "the message is not a JSON object")
    mojaloop = "payerFspId" in body or "payeeFspId" in body or "completedTimestamp" in body
    transfer_id = _text(body, "transferId")  # checked in the order of the fields, so the first fault is named
    payer_id = _text(body, "payerFspId" if mojaloop else "payerId")
    payee_id = _text(body, "payeeFspId" if mojaloop else "payeeId")
    amount, currency = _amount(body)
    return TransferRequest(
        transfer_id=transfer_id,
        payer_id=payer_id,
        payee_id=payee_id,
        amount=amount,
        currency=currency,
        committed_at=_instant(body, "completedTimestamp" if mojaloop else "committedAt"),
        settlement_model=_optional_text(body, "settlementModel"),
        attributes=_attributes(body.get("attributes")),
        refund_of=_optional_text(body, "refundOf"),
    )


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise DomainError(errors.VALIDATION, f"{name} is missing", [name])
    if not isinstance(value, str):
        raise DomainError(errors.VALIDATION, f"{name} must be a string", [name])
    return value


def _optional_text(body: Mapping[str, Any], name: str) -> str | None:
    return None if body.get(name) is None else _text(body, name)


def _amount(body: Mapping[str, Any]) -> tuple[str, str]:
    raw = body.get("amount")
    if isinstance(raw, dict):  # {"amount": "12.50", "currency": "USD"}
        inner = {"amount": raw.get("amount"), "currency": raw.get("currency")}
        return _number(inner, "amount"), _text(inner, "currency")
    currency = _text(body, "currencyCode") if "currencyCode" in body else _text(body, "currency")
    return _number(body, "amount"), currency


def _number(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if isinstance(value, bool) or value is None:
        raise DomainError(errors.VALIDATION, f"{name} is missing" if value is None else f"{name} must be a number",
                          [name])
    if isinstance(value, int | Decimal):  # a JSON number, read exactly (parse_float=Decimal)
        return str(value)
    if not isinstance(value, str):
        raise DomainError(errors.VALIDATION, f"{name} must be a decimal string", [name])
    return value


def _instant(body: Mapping[str, Any], name: str) -> datetime:
    value = body.get(name)
    if value is None:
        raise DomainError(errors.VALIDATION, f"{name} is missing", [name])
    try:
        if isinstance(value, int | Decimal) and not isinstance(value, bool):  # Mojaloop: epoch milliseconds
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
            if parsed.tzinfo is None:
                raise DomainError(errors.VALIDATION, f"{name} needs a UTC offset", [name])
            return parsed
    except (ValueError, OverflowError, OSError):
        pass
    raise DomainError(errors.VALIDATION, f"{name} must be an ISO 8601 date-time (or epoch milliseconds)", [name])


def _attributes(raw: Any) -> list[tuple[str, str]] | None:
    if raw is None:
        return None
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, list) and all(isinstance(i, dict) for i in raw):
        items = [(i.get("key"), i.get("value")) for i in raw]
    else:
        raise DomainError(errors.VALIDATION, "attributes must be an object or a list of {key, value}", ["attributes"])
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in items):
        raise DomainError(errors.VALIDATION, "attribute keys and values must be strings", ["attributes"])
    return items


# -- dead letters -------------------------------------------------------------------------------------

def dead_letter(data: bytes, headers: Mapping[str, str] | None, error: DomainError, *, subject: str, stream: str,
                sequence: int, deliveries: int, consumer: str, at: datetime) -> tuple[dict[str, str], bytes]:
    """The headers and JSON body of a refused transfer event on the dead-letter subject: the stable code, the
    reason, where it came from, and the original message (as text, or base64 when it is not UTF-8)."""
    body: dict[str, Any] = {
        "code": error.code, "reason": error.message, "field": error.field, "subject": subject, "stream": stream,
        "streamSequence": sequence, "deliveries": deliveries, "consumer": consumer, "at": at.isoformat(),
        "headers": dict(headers or {}),
    }
    try:
        body["message"] = data.decode("utf-8")
    except UnicodeDecodeError:
        body["messageBase64"] = base64.b64encode(data).decode("ascii")
    out = {MSG_ID: f"deadletter:{stream}:{sequence}", "Settlegraph-Code": error.code,
           "Settlegraph-Reason": error.message[:200].replace("\r", " ").replace("\n", " ")}
    return out, json.dumps(body, separators=(",", ":")).encode()


# -- settlement events out (the outbox) ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Outgoing:
    subject: str
    msg_id: str
    data: bytes


def outbox_messages(row_key: str, kind: str, payload: Mapping[str, Any], prefix: str) -> list[Outgoing]:
    """The messages of one outbox row, in order, each with a unique, deterministic id (`<row key>:<n>`, the key
    being the row's id and when it was written: app/db/outbox.Row.key), so the
    relay's retries are dropped by the broker. A batch change set becomes one message per batch:
    `<prefix>.batch.<status>` (lower case) carrying the history row (batchId, from, to, at, actor, reason,
    matrixId); a matrix event is `<prefix>.matrix.<requested|cancelled|settled>`."""
    if kind == "batch":
        ids: Sequence[int] = payload["ids"]
        subject = f"{prefix}.batch.{str(payload['to']).lower()}"
        # The shared part is encoded once; each message splices its batch id in front.
        shared = json.dumps({k: payload.get(k) for k in ("from", "to", "at", "actor", "reason", "matrixId")},
                            separators=(",", ":"))[1:]
        return [Outgoing(subject, f"{row_key}:{n}",
                         f'{{"event":"batchStatusChanged","batchId":{int(batch_id)},{shared}'.encode())
                for n, batch_id in enumerate(ids)]
    if kind == "matrix":
        body = {"event": f"matrix{str(payload['event']).capitalize()}", **{k: v for k, v in payload.items()
                                                                           if k != "event"}}
        return [Outgoing(f"{prefix}.matrix.{payload['event']}", f"{row_key}:0",
                         json.dumps(body, separators=(",", ":")).encode())]
    raise ValueError(f"unknown outbox kind {kind!r}")
