from django.db import migrations

# The usage report and the quota reconciliation add up every user's daily rows
# over a range of days. Rows arrive day after day, so the table lies in day
# order and a BRIN index (a few pages) lets PostgreSQL read only the range's
# blocks: 90 days of a year's 2.5 million rows, 280 ms to 140 ms
# (docs/benchmarks.md, "Ten million usage records"). A block range index is
# PostgreSQL's alone; other databases use the (day, ...) unique index.
INDEX = "usage_daily_day_brin"


def index_create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON usage_dailyusage USING brin (day)"
        )


def index_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0007_usagerecord_reasoning_tokens"),
    ]

    operations = [
        migrations.RunPython(index_create, index_drop),
    ]
