import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('actor', fields.CharField(max_length=128)),
                ('roles', fields.CharField(max_length=128)),
                ('operation', fields.CharField(max_length=64)),
                ('target', fields.CharField(null=True, max_length=512)),
                ('outcome', fields.CharField(max_length=32)),
                ('detail', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'audit_entry', 'app': 'settlement', 'pk_attr': 'id', 'table_description': 'Every mutation: who, what, target, when, outcome (SPEC §10).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Participant',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=128)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'participant', 'app': 'settlement', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SettlementModel',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=64)),
                ('batch_interval_seconds', fields.IntField()),
                ('currencies', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('segment_by', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('is_active', fields.BooleanField(default=True)),
                ('is_default', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'settlement_model', 'app': 'settlement', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Batch',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('model', fields.ForeignKeyField('settlement.SettlementModel', source_field='model_id', db_constraint=True, to_field='id', related_name='batches', on_delete=OnDelete.RESTRICT)),
                ('currency', fields.CharField(max_length=3)),
                ('segment', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('segment_key', fields.CharField(default='', max_length=255)),
                ('window_start', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('window_end', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('sequence', fields.IntField()),
                ('name', fields.CharField(unique=True, max_length=255)),
                ('status', fields.CharField(default='OPEN', db_index=True, max_length=24)),
                ('owner_matrix_id', fields.BigIntField(null=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'batch', 'app': 'settlement', 'unique_together': (('model', 'currency', 'segment_key', 'window_start', 'sequence'),), 'indexes': [Index(fields=['window_start'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='BatchAccount',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('batch', fields.ForeignKeyField('settlement.Batch', source_field='batch_id', db_constraint=True, to_field='id', related_name='accounts', on_delete=OnDelete.CASCADE)),
                ('participant_id', fields.CharField(max_length=128)),
                ('currency', fields.CharField(max_length=3)),
                ('debit', fields.BigIntField(default=0)),
                ('credit', fields.BigIntField(default=0)),
                ('transfer_count', fields.IntField(default=0)),
            ],
            options={'table': 'batch_account', 'app': 'settlement', 'unique_together': (('batch', 'participant_id'),), 'indexes': [Index(fields=['participant_id'])], 'pk_attr': 'id', 'table_description': 'Live totals of one participant in one batch, updated with every recorded transfer.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='BatchStatusChange',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('batch', fields.ForeignKeyField('settlement.Batch', source_field='batch_id', db_constraint=True, to_field='id', related_name='history', on_delete=OnDelete.CASCADE)),
                ('from_status', fields.CharField(null=True, max_length=24)),
                ('to_status', fields.CharField(max_length=24)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('actor', fields.CharField(null=True, max_length=128)),
                ('reason', fields.CharField(null=True, max_length=512)),
                ('matrix_id', fields.BigIntField(null=True)),
            ],
            options={'table': 'batch_status_change', 'app': 'settlement', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SettlementModelChange',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('model', fields.ForeignKeyField('settlement.SettlementModel', source_field='model_id', db_constraint=True, to_field='id', related_name='changes', on_delete=OnDelete.CASCADE)),
                ('actor', fields.CharField(max_length=128)),
                ('action', fields.CharField(max_length=32)),
                ('changes', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'settlement_model_change', 'app': 'settlement', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Transfer',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('transfer_id', fields.CharField(unique=True, max_length=128)),
                ('payer_id', fields.CharField(max_length=128)),
                ('payee_id', fields.CharField(max_length=128)),
                ('amount', fields.BigIntField()),
                ('currency', fields.CharField(max_length=3)),
                ('committed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('model', fields.ForeignKeyField('settlement.SettlementModel', source_field='model_id', db_constraint=True, to_field='id', related_name='transfers', on_delete=OnDelete.RESTRICT)),
                ('attributes', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('refund_of', fields.CharField(null=True, max_length=128)),
                ('batch', fields.ForeignKeyField('settlement.Batch', source_field='batch_id', db_constraint=True, to_field='id', related_name='transfers', on_delete=OnDelete.RESTRICT)),
                ('fingerprint', fields.CharField(max_length=64)),
                ('recorded_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'transfer', 'app': 'settlement', 'indexes': [Index(fields=['batch_id', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
