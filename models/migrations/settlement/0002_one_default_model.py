from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """At most one default settlement model (SPEC §3), enforced by the database itself."""

    dependencies = [("settlement", "0001_initial")]

    operations = [
        ops.RunSQL(
            "CREATE UNIQUE INDEX uniq_settlement_model_one_default ON settlement_model (is_default) "
            "WHERE is_default",
            reverse_sql="DROP INDEX uniq_settlement_model_one_default",
        ),
    ]
