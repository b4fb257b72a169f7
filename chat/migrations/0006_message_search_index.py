from django.db import migrations

# Content search (chat.selectors.conversation_search) matches
# to_tsvector('english', COALESCE(content, '')), the expression Django's
# SearchVector("content", config="english") writes; an index on exactly that
# expression lets PostgreSQL find the matching messages without computing it
# for every message of the user. Other databases search by substring: nothing.
INDEX = "chat_message_content_search"


def index_create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON chat_message USING gin "
            "(to_tsvector('english'::regconfig, COALESCE(content, '')))"
        )


def index_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("chat", "0005_message_tree_data")]

    operations = [migrations.RunPython(index_create, index_drop)]
