"""apiproxy is the proxy's runtime now: its models belong to `catalog`.

State only: the tables stay as they are and `catalog` owns them from here
(catalog 0001). The other apps' foreign keys point at catalog's models first.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("apiproxy", "0003_access_requests"),
        ("catalog", "0001_initial"),
        ("usage", "0004_backend_in_catalog"),
        ("ops", "0002_backend_in_catalog"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name=name)
                for name in (
                    "AccessRequest",
                    "Deployment",
                    "GroupLimits",
                    "KeyLimits",
                    "UserLimits",
                    "Model",
                    "Backend",
                )
            ],
        ),
    ]
