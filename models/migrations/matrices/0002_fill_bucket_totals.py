from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops

BUCKET = {
    "postgres": "(EXTRACT(EPOCH FROM b.window_start)::bigint / 3600 * 3600)",
    "sqlite": "(CAST(strftime('%s', b.window_start) AS INTEGER) / 3600 * 3600)",
}


async def fill(apps: Any, schema_editor: Any) -> None:
    """Roll up the batches recorded before the hourly totals existed (nothing to do on a fresh database)."""
    client = schema_editor.client
    bucket = BUCKET["postgres" if client.capabilities.dialect == "postgres" else "sqlite"]
    await client.execute_query("DELETE FROM batch_bucket_total")
    await client.execute_query(
        "INSERT INTO batch_bucket_total (model_id, currency, segment_key, bucket, status, participant_id, debit, "
        "credit, batch_count, version) "
        f"SELECT b.model_id, b.currency, b.segment_key, {bucket}, b.status, a.participant_id, SUM(a.debit), "
        "SUM(a.credit), 0, 1 FROM batch b JOIN batch_account a ON a.batch_id = b.id GROUP BY 1, 2, 3, 4, 5, 6 "
        f"UNION ALL SELECT b.model_id, b.currency, b.segment_key, {bucket}, b.status, '', 0, 0, COUNT(*), 1 "
        "FROM batch b GROUP BY 1, 2, 3, 4, 5"
    )


class Migration(migrations.Migration):
    """Hourly matrix totals for batches that existed before them."""

    dependencies = [("matrices", "0001_initial")]

    operations = [ops.RunPython(fill, reverse_code=ops.RunPython.noop)]
