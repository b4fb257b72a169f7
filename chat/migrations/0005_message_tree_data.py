"""Existing conversations become one branch: each message's parent is the
message before it, and the newest message is the one shown."""

from django.db import migrations


def messages_chain(apps, schema_editor):  # noqa: ANN001, ANN201
    Conversation = apps.get_model("chat", "Conversation")
    Message = apps.get_model("chat", "Message")
    for conversation in Conversation.objects.iterator():
        previous = None
        for message in Message.objects.filter(conversation=conversation).order_by(
            "id"
        ):
            if previous is not None:
                message.parent_id = previous.pk
                message.save(update_fields=["parent"])
            previous = message
        if previous is not None:
            conversation.active_leaf_id = previous.pk
            conversation.save(update_fields=["active_leaf"])


class Migration(migrations.Migration):
    dependencies = [("chat", "0004_message_tree")]

    operations = [migrations.RunPython(messages_chain, migrations.RunPython.noop)]
