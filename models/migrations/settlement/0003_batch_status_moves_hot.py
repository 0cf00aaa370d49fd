from tortoise import fields, migrations
from tortoise.migrations import operations as ops

from models.migrations.settlement._operations import AlterFieldState, RunOnPostgres


class Migration(migrations.Migration):
    """Cheaper batch status moves (issue 3: settling a day of 86,400 batches).

    The status index goes (five values; no query needs it) and owner_matrix_id is indexed only where set
    (the lookups are always `owner_matrix_id = <matrix>`). With no index on status and room on each page
    (fillfactor 60, PostgreSQL), settling the batches a matrix locked is a HOT update that writes no
    index entries. Existing pages keep their fill until rewritten (VACUUM FULL batch), new batches get it.
    """

    dependencies = [('settlement', '0002_one_default_model')]

    initial = False

    operations = [
        AlterFieldState(
            model_name='Batch',
            name='owner_matrix_id',
            field=fields.BigIntField(null=True),
        ),
        AlterFieldState(
            model_name='Batch',
            name='status',
            field=fields.CharField(default='OPEN', max_length=24),
        ),
        ops.RunSQL(
            ["DROP INDEX idx_batch_status_13db49", "DROP INDEX idx_batch_owner_m_5e85dd"],
            reverse_sql=["CREATE INDEX idx_batch_status_13db49 ON batch (status)",
                         "CREATE INDEX idx_batch_owner_m_5e85dd ON batch (owner_matrix_id)"],
        ),
        ops.RunSQL(
            "CREATE INDEX idx_batch_owner_matrix_set ON batch (owner_matrix_id) WHERE owner_matrix_id IS NOT NULL",
            reverse_sql="DROP INDEX idx_batch_owner_matrix_set",
        ),
        RunOnPostgres(
            "ALTER TABLE batch SET (fillfactor = 60)",
            reverse_sql="ALTER TABLE batch RESET (fillfactor)",
        ),
    ]
