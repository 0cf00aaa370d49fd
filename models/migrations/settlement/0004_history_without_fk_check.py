from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

from models.migrations.settlement._operations import AlterFieldState, RunOnPostgres


class Migration(migrations.Migration):
    """Batch history: indexed by batch (its reads scanned the table) and, on PostgreSQL, no foreign key
    check per row (half a second when a matrix settles 86,400 batches). History rows are only written for
    batches locked or created in the same transaction, and batches are never deleted. SQLite keeps its
    constraint (it cannot drop one without rebuilding the table)."""

    dependencies = [('settlement', '0003_batch_status_moves_hot')]

    initial = False

    operations = [
        AlterFieldState(
            model_name='BatchStatusChange',
            name='batch',
            field=fields.ForeignKeyField('settlement.Batch', source_field='batch_id', db_constraint=False,
                                         to_field='id', related_name='history', on_delete=OnDelete.CASCADE),
        ),
        RunOnPostgres(
            "ALTER TABLE batch_status_change DROP CONSTRAINT batch_status_change_batch_id_fkey",
            reverse_sql="ALTER TABLE batch_status_change ADD CONSTRAINT batch_status_change_batch_id_fkey "
                        "FOREIGN KEY (batch_id) REFERENCES batch (id) ON DELETE CASCADE",
        ),
        ops.AddIndex(
            model_name='BatchStatusChange',
            index=Index(fields=['batch_id', 'id']),
        ),
    ]
