from json import dumps, loads
import functools

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """Idempotency keys of mutations (SPEC §12): the first answer, by caller and key, until it expires."""

    dependencies = [('settlement', '0005_audit_chain')]

    initial = False

    operations = [
        ops.CreateModel(
            name='IdempotencyKey',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('caller', fields.CharField(max_length=128)),
                ('key', fields.CharField(max_length=255)),
                ('operation', fields.CharField(max_length=64)),
                ('digest', fields.CharField(max_length=64)),
                ('answer', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')),
                                            decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'idempotency_key', 'app': 'settlement', 'unique_together': (('caller', 'key'),),
                     'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
