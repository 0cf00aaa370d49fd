"""Tables of payment grants (SPEC §9): grants, prepared transfers, and the append-only spent amounts.

Money columns are integers of minor units (app/core/money.py). Business rules live in app/grants/.
"""
from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Grant(Model):
    """The authorisation of a payer to spend, with at most one limit (debit or receive) and an optional interval."""

    id = fields.BigIntField(primary_key=True)
    payer_id = fields.CharField(max_length=128, db_index=True)
    payee_id = fields.CharField(max_length=128, null=True)
    # DEBIT or RECEIVE; null: no limit, nothing tracked.
    limit_kind = fields.CharField(max_length=8, null=True)
    limit_amount = fields.BigIntField(null=True)
    # The limit's currency; null only for a grant without limit (any currency).
    currency = fields.CharField(max_length=3, null=True)
    # The ISO 8601 repeating interval as given; null: the limit applies over the grant's whole life.
    interval = fields.CharField(max_length=200, null=True)
    created_by = fields.CharField(max_length=128)
    created_at = fields.DatetimeField()

    class Meta:
        table = "payment_grant"  # GRANT is an SQL keyword


class PreparedTransfer(Model):
    """A transfer between prepare and commit or abort. Committed ones are also filed into settlement batches."""

    id = fields.BigIntField(primary_key=True)
    transfer_id = fields.CharField(max_length=128, unique=True)
    grant: fields.ForeignKeyNullableRelation[Grant] = fields.ForeignKeyField(
        "grants.Grant", related_name="transfers", null=True, on_delete=fields.RESTRICT
    )
    payer_id = fields.CharField(max_length=128)
    payee_id = fields.CharField(max_length=128)
    currency = fields.CharField(max_length=3)
    amount = fields.BigIntField()  # debit side, reserved
    receive_amount = fields.BigIntField()  # receive side, reserved
    settlement_model = fields.CharField(max_length=64, null=True)
    attributes: list[list[str]] = fields.JSONField(default=list)  # type: ignore[assignment]
    prepared_at = fields.DatetimeField()
    # The grant interval period the transfer was prepared in; spending stays counted there.
    interval_index = fields.BigIntField(null=True)
    interval_start = fields.DatetimeField(null=True)
    interval_end = fields.DatetimeField(null=True)
    state = fields.CharField(max_length=16)  # RESERVED | COMMITTED | ABORTED
    delivered_amount = fields.BigIntField(null=True)  # receive side, on commit
    sent_amount = fields.BigIntField(null=True)  # debit side, on abort
    committed_at = fields.DatetimeField(null=True)
    reason = fields.CharField(max_length=512, null=True)
    prepared_by = fields.CharField(max_length=128)
    finished_by = fields.CharField(max_length=128, null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "prepared_transfer"
        indexes = (("grant_id", "id"),)


class GrantSpentAmount(Model):
    """Append-only: one row per change of what a limited grant has spent.

    The id is the order (taken under the lock of the grant), recorded_at is informative only. Interval columns are
    null for a grant without interval."""

    id = fields.BigIntField(primary_key=True)
    grant: fields.ForeignKeyRelation[Grant] = fields.ForeignKeyField(
        "grants.Grant", related_name="spent_amounts", on_delete=fields.RESTRICT
    )
    transfer_id = fields.CharField(max_length=128, db_index=True)
    state = fields.CharField(max_length=16)  # the transfer's state after this change
    currency = fields.CharField(max_length=3)
    interval_index = fields.BigIntField(null=True)
    interval_start = fields.DatetimeField(null=True)
    interval_end = fields.DatetimeField(null=True)
    # What the transfer counts after this change, and by how much this change moved it.
    transfer_debit = fields.BigIntField()
    transfer_receive = fields.BigIntField()
    debit_change = fields.BigIntField()
    receive_change = fields.BigIntField()
    # Running sums after this change: of the transfer's interval, and of the grant's whole life.
    interval_debit = fields.BigIntField(null=True)
    interval_receive = fields.BigIntField(null=True)
    total_debit = fields.BigIntField()
    total_receive = fields.BigIntField()
    actor = fields.CharField(max_length=128)
    recorded_at = fields.DatetimeField()

    class Meta:
        table = "grant_spent_amount"
        indexes = (("grant_id", "id"), ("grant_id", "interval_index", "id"))
