from tortoise import migrations

from models.migrations.settlement._operations import RunOnPostgres


class Migration(migrations.Migration):
    """PostgreSQL: a transfer's primary key is its transferId, the key every lookup uses; the surrogate `id` stays, a
    number from its sequence that orders a batch's transfers (index (batch_id, id)), but no longer has an index of its
    own: nothing looks a transfer up by it, and that index cost 20-odd bytes of every transfer (issue 14). On SQLite
    `id` is the rowid, which costs no index. The ORM still names `id` as the model's key: transfers are written and
    read by hand-written SQL (app/batches/store_postgres.py), never saved or fetched by that key."""

    dependencies = [('settlement', '0007_transfer_content_compared')]

    initial = False

    operations = [
        RunOnPostgres(
            "ALTER TABLE transfer DROP CONSTRAINT transfer_pkey, DROP CONSTRAINT transfer_transfer_id_key, "
            "ADD CONSTRAINT transfer_pkey PRIMARY KEY (transfer_id)",
            reverse_sql="ALTER TABLE transfer DROP CONSTRAINT transfer_pkey, "
                        "ADD CONSTRAINT transfer_transfer_id_key UNIQUE (transfer_id), ADD PRIMARY KEY (id)",
        ),
    ]
