from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('settlement', '0002_one_default_model')]

    initial = True

    operations = [
        ops.CreateModel(
            name='BucketTotal',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('model_id', fields.IntField()),
                ('currency', fields.CharField(max_length=3)),
                ('segment_key', fields.CharField(max_length=255)),
                ('bucket', fields.BigIntField()),
                ('status', fields.CharField(max_length=24)),
                ('participant_id', fields.CharField(max_length=128)),
                ('debit', fields.BigIntField(default=0)),
                ('credit', fields.BigIntField(default=0)),
                ('batch_count', fields.IntField(default=0)),
                ('version', fields.BigIntField(default=1)),
            ],
            options={'table': 'batch_bucket_total', 'app': 'matrices', 'unique_together': (('model_id', 'currency', 'segment_key', 'bucket', 'status', 'participant_id'),), 'indexes': [Index(fields=['model_id', 'bucket'])], 'pk_attr': 'id', 'table_description': 'Batch totals rolled up per (model, currency, segment, hour bucket, batch status, participant).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SettlementMatrix',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('type', fields.CharField(max_length=8)),
                ('status', fields.CharField(default='OPEN', max_length=24)),
                ('model', fields.ForeignKeyField('settlement.SettlementModel', source_field='model_id', null=True, db_constraint=True, to_field='id', related_name='matrices', on_delete=OnDelete.RESTRICT)),
                ('period_unit', fields.CharField(null=True, max_length=8)),
                ('period_start', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('period_end', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('currencies', fields.CharField(default='', max_length=1024)),
                ('batch_statuses', fields.CharField(default='', max_length=128)),
                ('segment', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('segment_key', fields.CharField(null=True, max_length=255)),
                ('version', fields.IntField(default=1)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_by', fields.CharField(max_length=128)),
                ('requested_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('requested_by', fields.CharField(null=True, max_length=128)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'settlement_matrix', 'app': 'matrices', 'indexes': [Index(fields=['status', 'type'])], 'pk_attr': 'id', 'table_description': 'A selection of batches: DYNAMIC (criteria, evaluated live while OPEN) or STATIC (explicit ids).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MatrixBatch',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('matrix', fields.ForeignKeyField('matrices.SettlementMatrix', source_field='matrix_id', db_constraint=True, to_field='id', related_name='members', on_delete=OnDelete.CASCADE)),
                ('batch', fields.ForeignKeyField('settlement.Batch', source_field='batch_id', db_constraint=True, to_field='id', related_name='matrix_members', on_delete=OnDelete.RESTRICT)),
            ],
            options={'table': 'matrix_batch', 'app': 'matrices', 'unique_together': (('matrix_id', 'batch_id'),), 'indexes': [Index(fields=['batch_id'])], 'pk_attr': 'id', 'table_description': 'Members of a STATIC matrix, and of a DYNAMIC one once requestSettlement froze its batch set.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Settlement',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('matrix', fields.OneToOneField('matrices.SettlementMatrix', source_field='matrix_id', db_constraint=True, to_field='id', related_name='settlement', on_delete=OnDelete.RESTRICT)),
                ('requested_by', fields.CharField(null=True, max_length=128)),
                ('settled_by', fields.CharField(max_length=128)),
                ('settled_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'matrix_settlement', 'app': 'matrices', 'pk_attr': 'id', 'table_description': 'The settlement of one matrix: at most one per matrix.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='JournalEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('settlement', fields.ForeignKeyField('matrices.Settlement', source_field='settlement_id', db_constraint=True, to_field='id', related_name='journal', on_delete=OnDelete.RESTRICT)),
                ('participant_id', fields.CharField(max_length=128)),
                ('currency', fields.CharField(max_length=3)),
                ('description', fields.CharField(max_length=255)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'journal_entry', 'app': 'matrices', 'pk_attr': 'id', 'table_description': 'One double-entry posting of the settlement ledger: its lines balance.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='JournalLine',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('entry', fields.ForeignKeyField('matrices.JournalEntry', source_field='entry_id', db_constraint=True, to_field='id', related_name='lines', on_delete=OnDelete.CASCADE)),
                ('account', fields.CharField(max_length=16)),
                ('participant_id', fields.CharField(max_length=128)),
                ('currency', fields.CharField(max_length=3)),
                ('debit', fields.BigIntField(default=0)),
                ('credit', fields.BigIntField(default=0)),
            ],
            options={'table': 'journal_line', 'app': 'matrices', 'indexes': [Index(fields=['participant_id', 'currency', 'account'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SettlementTotal',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('settlement', fields.ForeignKeyField('matrices.Settlement', source_field='settlement_id', db_constraint=True, to_field='id', related_name='totals', on_delete=OnDelete.CASCADE)),
                ('participant_id', fields.CharField(max_length=128)),
                ('currency', fields.CharField(max_length=3)),
                ('debit', fields.BigIntField()),
                ('credit', fields.BigIntField()),
            ],
            options={'table': 'matrix_settlement_total', 'app': 'matrices', 'unique_together': (('settlement_id', 'participant_id', 'currency'),), 'pk_attr': 'id', 'table_description': 'What a settlement settled, per participant and currency (the report).'},
            bases=['Model'],
        ),
    ]
