from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """A transfer sent again is compared with the stored row's content (app/batches/store.TransferContent), not with
    a stored digest: the sha256 in hex cost 65 bytes of every transfer row (issue 14)."""

    dependencies = [('settlement', '0006_idempotency_keys')]

    initial = False

    operations = [
        ops.RemoveField(model_name='Transfer', name='fingerprint'),
    ]
