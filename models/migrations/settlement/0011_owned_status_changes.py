from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

# A batch's whole history (SPEC §5): its own rows, then the rows of the matrix that owns it (models.settlement.
# OwnedStatusChange). `part` and `seq` order it: a batch's own rows all come before its owner's (once a matrix owns
# a batch, only that matrix moves it, and giving it up turns the matrix's rows into the batch's own).
HISTORY_VIEW = (
    "CREATE VIEW batch_history AS "
    "SELECT c.batch_id, c.from_status, c.to_status, c.at, c.actor, c.reason, c.matrix_id, 0 AS part, c.id AS seq "
    "FROM batch_status_change c "
    "UNION ALL "
    "SELECT b.id, o.from_status, o.to_status, o.at, o.actor, o.reason, o.matrix_id, 1, o.id "
    "FROM owned_status_change o JOIN batch b ON b.owner_matrix_id = o.matrix_id"
)


class Migration(migrations.Migration):
    """A matrix-wide lock or settle keeps one history row for all the batches it moves (issue 14: a day's
    requestSettlement and settleMatrix each wrote 86,400 history rows), read through the view batch_history."""

    dependencies = [('settlement', '0010_lock_without_owner_index')]

    initial = False

    operations = [
        ops.CreateModel(
            name='OwnedStatusChange',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('matrix_id', fields.BigIntField()),
                ('from_status', fields.CharField(max_length=24)),
                ('to_status', fields.CharField(max_length=24)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('actor', fields.CharField(null=True, max_length=128)),
                ('reason', fields.CharField(null=True, max_length=512)),
            ],
            options={'table': 'owned_status_change', 'app': 'settlement',
                     'indexes': [Index(fields=['matrix_id', 'id'])], 'pk_attr': 'id',
                     'table_description': "A status change of every batch a matrix owns, kept once for all of them "
                                          "(SPEC §5: a batch's history)."},
            bases=['Model'],
        ),
        ops.RunSQL(HISTORY_VIEW, reverse_sql="DROP VIEW batch_history"),
    ]
