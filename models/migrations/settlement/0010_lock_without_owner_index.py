from tortoise import migrations
from tortoise.migrations import operations as ops

from models.migrations.settlement._operations import RunOnPostgres


class Migration(migrations.Migration):
    """A matrix's lock is a HOT update too (issue 14: a day's requestSettlement).

    Locking sets owner_matrix_id on every batch a matrix takes; while that column was indexed (the partial index of
    migration 0003) each of those 86,400 updates wrote a new entry into every index of the batch table. The batches a
    matrix owns are found through its membership instead (app/matrices/store.members_where: a frozen DYNAMIC matrix
    by its period, a STATIC one by its list), so the index goes. Fillfactor 50 (was 60) leaves a page room for a
    new version of every row on it, so the lock and then the settle both stay on the page (PostgreSQL only;
    existing pages keep their fill until rewritten, e.g. VACUUM FULL batch).
    """

    dependencies = [('settlement', '0009_outbox')]

    initial = False

    operations = [
        ops.RunSQL(
            "DROP INDEX idx_batch_owner_matrix_set",
            reverse_sql="CREATE INDEX idx_batch_owner_matrix_set ON batch (owner_matrix_id) "
                        "WHERE owner_matrix_id IS NOT NULL",
        ),
        RunOnPostgres(
            "ALTER TABLE batch SET (fillfactor = 50)",
            reverse_sql="ALTER TABLE batch SET (fillfactor = 60)",
        ),
    ]
