from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """The audit log's hash chain (SPEC §10): seals over entries in id order, and each sealed entry's chain hash."""

    dependencies = [('settlement', '0004_history_without_fk_check')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AuditSeal',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('first_entry_id', fields.BigIntField()),
                ('last_entry_id', fields.BigIntField()),
                ('entry_count', fields.IntField()),
                ('previous_hash', fields.CharField(max_length=64)),
                ('hash', fields.CharField(max_length=64)),
                ('sealed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'audit_seal', 'app': 'settlement', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AuditEntryHash',
            fields=[
                ('entry_id', fields.BigIntField(generated=False, primary_key=True, unique=True, db_index=True)),
                ('hash', fields.CharField(max_length=64)),
            ],
            options={'table': 'audit_entry_hash', 'app': 'settlement', 'pk_attr': 'entry_id'},
            bases=['Model'],
        ),
    ]
