from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Grant',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('payer_id', fields.CharField(db_index=True, max_length=128)),
                ('payee_id', fields.CharField(null=True, max_length=128)),
                ('limit_kind', fields.CharField(null=True, max_length=8)),
                ('limit_amount', fields.BigIntField(null=True)),
                ('currency', fields.CharField(null=True, max_length=3)),
                ('interval', fields.CharField(null=True, max_length=200)),
                ('created_by', fields.CharField(max_length=128)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'payment_grant', 'app': 'grants', 'pk_attr': 'id', 'table_description': 'The authorisation of a payer to spend, with at most one limit (debit or receive) and an optional interval.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='GrantSpentAmount',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('grant', fields.ForeignKeyField('grants.Grant', source_field='grant_id', db_constraint=True, to_field='id', related_name='spent_amounts', on_delete=OnDelete.RESTRICT)),
                ('transfer_id', fields.CharField(db_index=True, max_length=128)),
                ('state', fields.CharField(max_length=16)),
                ('currency', fields.CharField(max_length=3)),
                ('interval_index', fields.BigIntField(null=True)),
                ('interval_start', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('interval_end', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('transfer_debit', fields.BigIntField()),
                ('transfer_receive', fields.BigIntField()),
                ('debit_change', fields.BigIntField()),
                ('receive_change', fields.BigIntField()),
                ('interval_debit', fields.BigIntField(null=True)),
                ('interval_receive', fields.BigIntField(null=True)),
                ('total_debit', fields.BigIntField()),
                ('total_receive', fields.BigIntField()),
                ('actor', fields.CharField(max_length=128)),
                ('recorded_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'grant_spent_amount', 'app': 'grants', 'indexes': [Index(fields=['grant_id', 'id']), Index(fields=['grant_id', 'interval_index', 'id'])], 'pk_attr': 'id', 'table_description': 'Append-only: one row per change of what a limited grant has spent.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PreparedTransfer',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('transfer_id', fields.CharField(unique=True, max_length=128)),
                ('grant', fields.ForeignKeyField('grants.Grant', source_field='grant_id', null=True, db_constraint=True, to_field='id', related_name='transfers', on_delete=OnDelete.RESTRICT)),
                ('payer_id', fields.CharField(max_length=128)),
                ('payee_id', fields.CharField(max_length=128)),
                ('currency', fields.CharField(max_length=3)),
                ('amount', fields.BigIntField()),
                ('receive_amount', fields.BigIntField()),
                ('settlement_model', fields.CharField(null=True, max_length=64)),
                ('attributes', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('prepared_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('interval_index', fields.BigIntField(null=True)),
                ('interval_start', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('interval_end', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('state', fields.CharField(max_length=16)),
                ('delivered_amount', fields.BigIntField(null=True)),
                ('sent_amount', fields.BigIntField(null=True)),
                ('committed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('reason', fields.CharField(null=True, max_length=512)),
                ('prepared_by', fields.CharField(max_length=128)),
                ('finished_by', fields.CharField(null=True, max_length=128)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'prepared_transfer', 'app': 'grants', 'indexes': [Index(fields=['grant_id', 'id'])], 'pk_attr': 'id', 'table_description': 'A transfer between prepare and commit or abort. Committed ones are also filed into settlement batches.'},
            bases=['Model'],
        ),
    ]
