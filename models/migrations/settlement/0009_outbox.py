from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """The outbox of the event stream (SPEC §13): change sets written in the transaction that makes them, relayed
    to the broker in id order (= commit order, app/db/outbox.py) and deleted once acknowledged."""

    dependencies = [('settlement', '0008_transfer_keyed_by_its_id')]

    initial = False

    operations = [
        ops.CreateModel(
            name='OutboxEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharField(max_length=16)),
                ('payload', fields.TextField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'outbox', 'app': 'settlement', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
