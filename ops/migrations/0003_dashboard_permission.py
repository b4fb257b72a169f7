"""The operations dashboard gets its own permission (being staff is not enough)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0002_backend_in_catalog"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="backendalertstate",
            options={
                "permissions": [
                    ("view_dashboard", "Can view the operations dashboard")
                ],
                "verbose_name": "backend alert state",
            },
        ),
    ]
