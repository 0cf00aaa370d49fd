"""The event streams' wire formats (app/streams/messages.py): pure."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from app.core.errors import DomainError
from app.streams.messages import dead_letter, decode_transfer, outbox_messages


def test_plain_names_of_spec_4() -> None:
    request = decode_transfer(json.dumps({
        "transferId": "t-1", "payerId": "a", "payeeId": "b", "amount": "12.50", "currency": "USD",
        "committedAt": "2026-03-02T14:05:00Z", "settlementModel": "RTP", "attributes": {"transferType": "P2P"},
        "refundOf": "t-0"}).encode())
    assert (request.transfer_id, request.payer_id, request.payee_id, request.amount, request.currency) == \
        ("t-1", "a", "b", "12.50", "USD")
    assert request.committed_at == datetime(2026, 3, 2, 14, 5, tzinfo=UTC)
    assert request.settlement_model == "RTP" and request.refund_of == "t-0"
    assert list(request.attributes or []) == [("transferType", "P2P")]


def test_mojaloop_transfer_committed_fulfiled_names() -> None:
    flat = decode_transfer(json.dumps({
        "transferId": "m-1", "payerFspId": "fsp-a", "payeeFspId": "fsp-b", "amount": "7", "currencyCode": "EUR",
        "settlementModel": "DEFERRED", "completedTimestamp": 1772460300000}).encode())
    assert (flat.payer_id, flat.payee_id, flat.amount, flat.currency) == ("fsp-a", "fsp-b", "7", "EUR")
    assert flat.committed_at == datetime(2026, 3, 2, 14, 5, tzinfo=UTC)
    nested = decode_transfer(json.dumps({"msgName": "TransferCommittedFulfiledEvt", "payload": {
        "transferId": "m-2", "payerFspId": "fsp-a", "payeeFspId": "fsp-b",
        "amount": {"amount": "1.10", "currency": "USD"}, "completedTimestamp": "2026-03-02T14:05:00+00:00"}}).encode())
    assert (nested.transfer_id, nested.amount, nested.currency) == ("m-2", "1.10", "USD")


def test_a_json_number_amount_is_read_exactly() -> None:
    request = decode_transfer(b'{"transferId":"t","payerId":"a","payeeId":"b","amount":0.10000000000000001,'
                              b'"currency":"USD","committedAt":"2026-03-02T14:05:00Z"}')
    assert request.amount == "0.10000000000000001"  # then refused by the core (scale), never rounded


@pytest.mark.parametrize(("data", "code", "field"), [
    (b"nope", "BAD_REQUEST", None),
    (b"[]", "BAD_REQUEST", None),
    (b'{"payerId":"a"}', "VALIDATION", ["transferId"]),
    (b'{"transferId":1}', "VALIDATION", ["transferId"]),
    (b'{"transferId":"t","payerId":"a","payeeId":"b","amount":true,"currency":"USD"}', "VALIDATION", ["amount"]),
    (b'{"transferId":"t","payerId":"a","payeeId":"b","amount":"1","currency":"USD","committedAt":"yesterday"}',
     "VALIDATION", ["committedAt"]),
    (b'{"transferId":"t","payerId":"a","payeeId":"b","amount":"1","currency":"USD",'
     b'"committedAt":"2026-03-02T14:05:00"}', "VALIDATION", ["committedAt"]),
    (b'{"transferId":"t","payerId":"a","payeeId":"b","amount":"1","currency":"USD",'
     b'"committedAt":"2026-03-02T14:05:00Z","attributes":[1]}', "VALIDATION", ["attributes"]),
])
def test_what_cannot_be_a_transfer_is_refused_with_a_stable_code(data: bytes, code: str,
                                                                 field: list[str] | None) -> None:
    with pytest.raises(DomainError) as raised:
        decode_transfer(data)
    assert raised.value.code == code and raised.value.field == field


def test_a_dead_letter_carries_the_original_its_code_and_reason() -> None:
    headers, body = dead_letter(b"\xff", {"X": "1"}, DomainError("BAD_REQUEST", "not JSON\nat all"),
                                subject="hub.t", stream="S", sequence=42, deliveries=1, consumer="c",
                                at=datetime(2026, 3, 2, tzinfo=UTC))
    letter = json.loads(body)
    assert headers["Settlegraph-Code"] == "BAD_REQUEST" and "\n" not in headers["Settlegraph-Reason"]
    assert headers["Nats-Msg-Id"] == "deadletter:S:42"
    assert letter["messageBase64"] == "/w==" and letter["streamSequence"] == 42 and letter["headers"] == {"X": "1"}


def test_a_batch_change_set_becomes_one_message_per_batch_with_deterministic_ids() -> None:
    payload = {"from": "AWAITING_SETTLEMENT", "to": "SETTLED", "at": "2026-03-02T00:00:00+00:00", "actor": "sam",
               "reason": "settled in matrix 3", "matrixId": 3, "ids": [7, 8, 9]}
    messages = outbox_messages("12@1772409600000000", "batch", payload, "p")
    assert [m.msg_id for m in messages] == ["12@1772409600000000:0", "12@1772409600000000:1", "12@1772409600000000:2"]
    assert {m.subject for m in messages} == {"p.batch.settled"}
    assert json.loads(messages[1].data) == {"event": "batchStatusChanged", "batchId": 8, "from": "AWAITING_SETTLEMENT",
                                            "to": "SETTLED", "at": "2026-03-02T00:00:00+00:00", "actor": "sam",
                                            "reason": "settled in matrix 3", "matrixId": 3}
    assert outbox_messages("12@1772409600000000", "batch", payload, "p") == messages


def test_a_matrix_event_is_one_message() -> None:
    [message] = outbox_messages("5@1", "matrix", {"event": "settled", "matrixId": 3, "settlement": {"id": 1}}, "p")
    assert (message.subject, message.msg_id) == ("p.matrix.settled", "5@1:0")
    assert json.loads(message.data) == {"event": "matrixSettled", "matrixId": 3, "settlement": {"id": 1}}


def test_a_row_written_again_after_a_restore_has_new_message_ids() -> None:
    """Outbox ids start again after a database is restored: the time a row was written keeps its messages' ids new,
    so the broker does not drop them as repeats; the same row read twice (a relay's retry) keeps its ids."""
    from datetime import UTC, datetime

    from app.db.outbox import Row

    before = Row(12, "matrix", {}, datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    again = Row(12, "matrix", {}, datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    restored = Row(12, "matrix", {}, datetime(2026, 3, 2, 11, 30, 0, 1, tzinfo=UTC))
    assert before.key == again.key != restored.key
