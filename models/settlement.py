"""Tables of the settlement core: models, batches and their live accounts, transfers, history, audit.

Money columns are integers of minor units (app/core/money.py). Business rules live in app/batches/, app/audit.py
and app/settlement_models.py.
"""
from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class SettlementModel(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    batch_interval_seconds = fields.IntField()
    currencies: fields.Field[list[str]] = fields.JSONField(default=list)
    segment_by: fields.Field[list[str]] = fields.JSONField(default=list)
    is_active = fields.BooleanField(default=True)
    is_default = fields.BooleanField(default=False)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "settlement_model"


class SettlementModelChange(Model):
    id = fields.BigIntField(primary_key=True)
    model: fields.ForeignKeyRelation[SettlementModel] = fields.ForeignKeyField(
        "settlement.SettlementModel", related_name="changes", on_delete=fields.CASCADE
    )
    actor = fields.CharField(max_length=128)
    action = fields.CharField(max_length=32)
    changes: fields.Field[dict] = fields.JSONField(default=dict)
    at = fields.DatetimeField()

    class Meta:
        table = "settlement_model_change"


class Batch(Model):
    id = fields.BigIntField(primary_key=True)
    model: fields.ForeignKeyRelation[SettlementModel] = fields.ForeignKeyField(
        "settlement.SettlementModel", related_name="batches", on_delete=fields.RESTRICT
    )
    currency = fields.CharField(max_length=3)
    # The values of the model's segmentBy attributes, in order: [[key, value], ...]
    segment: fields.Field[list] = fields.JSONField(default=list)
    # The same values joined into one comparable string: part of the batch key.
    segment_key = fields.CharField(max_length=255, default="")
    window_start = fields.DatetimeField()
    window_end = fields.DatetimeField()
    sequence = fields.IntField()
    name = fields.CharField(max_length=255, unique=True)
    # Not indexed, nor is owner_matrix_id (migrations 0003, 0010): a matrix's lock and settle change both on
    # every batch it takes, and with no index on them (and room left on each page, fillfactor 50 on
    # PostgreSQL) those updates are HOT, touching no index.
    status = fields.CharField(max_length=24, default="OPEN")
    # The matrix that locked the batch for settlement (SPEC §5); kept as a plain id so the settlement
    # core does not depend on the matrices tables. A matrix's own batches are found through its membership
    # (app/matrices/store.members_where), not by this column.
    owner_matrix_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "batch"
        unique_together = (("model", "currency", "segment_key", "window_start", "sequence"),)
        indexes = (("window_start",),)


class BatchAccount(Model):
    """Live totals of one participant in one batch, updated with every recorded transfer."""

    id = fields.BigIntField(primary_key=True)
    batch: fields.ForeignKeyRelation[Batch] = fields.ForeignKeyField(
        "settlement.Batch", related_name="accounts", on_delete=fields.CASCADE
    )
    participant_id = fields.CharField(max_length=128)
    currency = fields.CharField(max_length=3)
    debit = fields.BigIntField(default=0)
    credit = fields.BigIntField(default=0)
    transfer_count = fields.IntField(default=0)

    class Meta:
        table = "batch_account"
        unique_together = (("batch", "participant_id"),)
        indexes = (("participant_id",),)


class Transfer(Model):
    # On PostgreSQL the table's primary key is transfer_id (migration 0008): `id` orders a batch's transfers and has
    # no index of its own. Transfers are written and read by hand-written SQL, never saved or fetched by `id`.
    id = fields.BigIntField(primary_key=True)
    transfer_id = fields.CharField(max_length=128, unique=True)
    payer_id = fields.CharField(max_length=128)
    payee_id = fields.CharField(max_length=128)
    amount = fields.BigIntField()
    currency = fields.CharField(max_length=3)
    committed_at = fields.DatetimeField()
    model: fields.ForeignKeyRelation[SettlementModel] = fields.ForeignKeyField(
        "settlement.SettlementModel", related_name="transfers", on_delete=fields.RESTRICT
    )
    attributes: fields.Field[list] = fields.JSONField(default=list)
    refund_of = fields.CharField(max_length=128, null=True)
    batch: fields.ForeignKeyRelation[Batch] = fields.ForeignKeyField(
        "settlement.Batch", related_name="transfers", on_delete=fields.RESTRICT
    )
    recorded_at = fields.DatetimeField()

    class Meta:
        table = "transfer"
        indexes = (("batch_id", "id"),)


class BatchStatusChange(Model):
    id = fields.BigIntField(primary_key=True)
    # No foreign key constraint on PostgreSQL (migration 0004): its per-row check cost half a second when a
    # matrix settles 86,400 batches. Rows are only written for batches locked (or just created) in the same
    # transaction, and batches are never deleted.
    batch: fields.ForeignKeyRelation[Batch] = fields.ForeignKeyField(
        "settlement.Batch", related_name="history", on_delete=fields.CASCADE, db_constraint=False
    )
    from_status = fields.CharField(max_length=24, null=True)
    to_status = fields.CharField(max_length=24)
    at = fields.DatetimeField()
    actor = fields.CharField(max_length=128, null=True)
    reason = fields.CharField(max_length=512, null=True)
    matrix_id = fields.BigIntField(null=True)

    class Meta:
        table = "batch_status_change"
        indexes = (("batch_id", "id"),)  # a batch's history, in order


class OwnedStatusChange(Model):
    """A status change of every batch a matrix owns, kept once for all of them (SPEC §5: a batch's history).

    A matrix locking or settling a day moves 86,400 batches the same way: one row here instead of 86,400 in
    batch_status_change (half a second of each transition's writing, and its WAL). It belongs to the history of
    every batch whose owner_matrix_id is `matrix_id`: the matrix's lock and settle move exactly the batches it
    owns (an OPEN matrix owns none), and when it gives them up (cancelSettlement) its rows are first copied into
    each batch's own history and deleted (app/batches/lifecycle.apply). A batch's whole history is the view
    `batch_history` (migration 0011): its own rows, then those of its owner."""

    id = fields.BigIntField(primary_key=True)
    matrix_id = fields.BigIntField()
    from_status = fields.CharField(max_length=24)
    to_status = fields.CharField(max_length=24)
    at = fields.DatetimeField()
    actor = fields.CharField(max_length=128, null=True)
    reason = fields.CharField(max_length=512, null=True)

    class Meta:
        table = "owned_status_change"
        indexes = (("matrix_id", "id"),)


class Participant(Model):
    id = fields.CharField(max_length=128, primary_key=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "participant"


class AuditEntry(Model):
    """Every mutation: who, what, target, when, outcome (SPEC §10)."""

    id = fields.BigIntField(primary_key=True)
    actor = fields.CharField(max_length=128)
    roles = fields.CharField(max_length=128)
    operation = fields.CharField(max_length=64)
    target = fields.CharField(max_length=512, null=True)
    outcome = fields.CharField(max_length=32)
    detail: fields.Field[dict | None] = fields.JSONField(null=True)
    at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "audit_entry"


class AuditSeal(Model):
    """A seal over the audit entries (first_entry_id .. last_entry_id), in id order (SPEC §10): `hash` is the chain's
    hash through its last entry, continuing `previous_hash`, the previous seal's. Written by the periodic sealer
    (app/audit/chain.py), never on a mutation's path."""

    id = fields.BigIntField(primary_key=True)
    first_entry_id = fields.BigIntField()
    last_entry_id = fields.BigIntField()
    entry_count = fields.IntField()
    previous_hash = fields.CharField(max_length=64)
    hash = fields.CharField(max_length=64)
    sealed_at = fields.DatetimeField()

    class Meta:
        table = "audit_seal"


class AuditEntryHash(Model):
    """The chain's hash through one sealed audit entry: sha256 of the previous entry's hash and the entry."""

    entry_id = fields.BigIntField(primary_key=True, generated=False)
    hash = fields.CharField(max_length=64)

    class Meta:
        table = "audit_entry_hash"


class IdempotencyKey(Model):
    """A mutation's idempotency key (SPEC §12): the first answer, kept with a digest of caller, operation and
    arguments until `expires_at`. `answer` is null while the first call still runs."""

    id = fields.BigIntField(primary_key=True)
    caller = fields.CharField(max_length=128)
    key = fields.CharField(max_length=255)
    operation = fields.CharField(max_length=64)
    digest = fields.CharField(max_length=64)
    answer: fields.Field[dict | None] = fields.JSONField(null=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "idempotency_key"
        unique_together = (("caller", "key"),)


class OutboxEntry(Model):
    """One change set to publish on the event stream (SPEC §13), written in the transaction that made it and
    deleted once the broker acknowledged its messages (app/streams/relay.py). `kind` names what changed
    (`batch`, `matrix`), `payload` is compact JSON: a batch change set lists every batch id that moved with the
    same from / to / at / actor / reason / matrix, so a matrix settling 86,400 batches writes one row."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=16)
    payload = fields.TextField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "outbox"
