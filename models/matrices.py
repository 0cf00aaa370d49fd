"""Tables of settlement matrices, their settlements and the settlement ledger (SPEC §6, §7).

Money columns are integers of minor units (app/core/money.py). Business rules live in app/matrices/ (the hourly
rollup's arithmetic in app/batches/rollup.py).
"""
from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class SettlementMatrix(Model):
    """A selection of batches: DYNAMIC (criteria, evaluated live while OPEN) or STATIC (explicit ids)."""

    id = fields.BigIntField(primary_key=True)
    type = fields.CharField(max_length=8)
    status = fields.CharField(max_length=24, default="OPEN")
    # DYNAMIC criteria; NULL for STATIC matrices.
    model: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "settlement.SettlementModel", related_name="matrices", null=True, on_delete=fields.RESTRICT
    )
    period_unit = fields.CharField(max_length=8, null=True)
    period_start = fields.DatetimeField(null=True)
    period_end = fields.DatetimeField(null=True)
    # Sets kept as delimited text (",USD,EUR,"; "" = any) so one SQL predicate reads them in both dialects.
    currencies = fields.CharField(max_length=1024, default="")
    batch_statuses = fields.CharField(max_length=128, default="")
    segment: fields.JSONField = fields.JSONField(default=list)
    segment_key = fields.CharField(max_length=255, null=True)  # NULL: any segment
    # Counts every command that changes the matrix itself; part of its checksum.
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField()
    created_by = fields.CharField(max_length=128)
    requested_at = fields.DatetimeField(null=True)
    requested_by = fields.CharField(max_length=128, null=True)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "settlement_matrix"
        indexes = (("status", "type"),)


class MatrixBatch(Model):
    """Members of a STATIC matrix, and of a DYNAMIC one once requestSettlement froze its batch set."""

    id = fields.BigIntField(primary_key=True)
    matrix: fields.ForeignKeyRelation[SettlementMatrix] = fields.ForeignKeyField(
        "matrices.SettlementMatrix", related_name="members", on_delete=fields.CASCADE
    )
    batch: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "settlement.Batch", related_name="matrix_members", on_delete=fields.RESTRICT
    )

    class Meta:
        table = "matrix_batch"
        unique_together = (("matrix_id", "batch_id"),)
        indexes = (("batch_id",),)


class BucketTotal(Model):
    """Batch totals rolled up per (model, currency, segment, hour bucket, batch status, participant).

    Maintained in the transaction that records transfers and in the one that changes a batch status, so a
    live matrix read sums a few hundred rows instead of every batch account. participant_id '' carries
    the batch count of the bucket. version grows with every change to the row (part of matrix checksums).
    """

    id = fields.BigIntField(primary_key=True)
    model_id = fields.IntField()
    currency = fields.CharField(max_length=3)
    segment_key = fields.CharField(max_length=255)
    bucket = fields.BigIntField()  # epoch seconds of the hour the batch window starts in
    status = fields.CharField(max_length=24)
    participant_id = fields.CharField(max_length=128)
    debit = fields.BigIntField(default=0)
    credit = fields.BigIntField(default=0)
    batch_count = fields.IntField(default=0)
    version = fields.BigIntField(default=1)

    class Meta:
        table = "batch_bucket_total"
        unique_together = (("model_id", "currency", "segment_key", "bucket", "status", "participant_id"),)
        indexes = (("model_id", "bucket"),)


class Settlement(Model):
    """The settlement of one matrix: at most one per matrix."""

    id = fields.BigIntField(primary_key=True)
    matrix: fields.OneToOneRelation[SettlementMatrix] = fields.OneToOneField(
        "matrices.SettlementMatrix", related_name="settlement", on_delete=fields.RESTRICT
    )
    requested_by = fields.CharField(max_length=128, null=True)
    settled_by = fields.CharField(max_length=128)
    settled_at = fields.DatetimeField()

    class Meta:
        table = "matrix_settlement"


class SettlementTotal(Model):
    """What a settlement settled, per participant and currency (the report)."""

    id = fields.BigIntField(primary_key=True)
    settlement: fields.ForeignKeyRelation[Settlement] = fields.ForeignKeyField(
        "matrices.Settlement", related_name="totals", on_delete=fields.CASCADE
    )
    participant_id = fields.CharField(max_length=128)
    currency = fields.CharField(max_length=3)
    debit = fields.BigIntField()
    credit = fields.BigIntField()

    class Meta:
        table = "matrix_settlement_total"
        unique_together = (("settlement_id", "participant_id", "currency"),)


class JournalEntry(Model):
    """One double-entry posting of the settlement ledger: its lines balance."""

    id = fields.BigIntField(primary_key=True)
    settlement: fields.ForeignKeyRelation[Settlement] = fields.ForeignKeyField(
        "matrices.Settlement", related_name="journal", on_delete=fields.RESTRICT
    )
    participant_id = fields.CharField(max_length=128)
    currency = fields.CharField(max_length=3)
    description = fields.CharField(max_length=255)
    at = fields.DatetimeField()

    class Meta:
        table = "journal_entry"


class JournalLine(Model):
    id = fields.BigIntField(primary_key=True)
    entry: fields.ForeignKeyRelation[JournalEntry] = fields.ForeignKeyField(
        "matrices.JournalEntry", related_name="lines", on_delete=fields.CASCADE
    )
    account = fields.CharField(max_length=16)  # POSITION or SETTLEMENT
    participant_id = fields.CharField(max_length=128)
    currency = fields.CharField(max_length=3)
    debit = fields.BigIntField(default=0)
    credit = fields.BigIntField(default=0)

    class Meta:
        table = "journal_line"
        indexes = (("participant_id", "currency", "account"),)
