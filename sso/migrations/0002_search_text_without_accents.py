"""search_text becomes accent-free ("ulikool" finds "Ülikool"): recompute it
for the institutions already there, as sso.models.institution_search_text
now writes it."""

import unicodedata

from django.db import migrations


def _fold(text):
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def search_text_refold(apps, schema_editor):
    Institution = apps.get_model("sso", "Institution")
    changed = []
    for row in Institution.objects.only("pk", "name", "domains").iterator(chunk_size=2000):
        row.search_text = _fold(" ".join([row.name, row.domains]).strip())
        changed.append(row)
    Institution.objects.bulk_update(changed, ["search_text"], batch_size=2000)


class Migration(migrations.Migration):
    dependencies = [("sso", "0001_initial")]

    operations = [migrations.RunPython(search_text_refold, migrations.RunPython.noop)]
