"""Conversations and their messages, stored per user.

A conversation carries its own settings (model, system prompt, temperature);
the model's recommended sampling parameters (catalog.models.Model) apply
where the conversation sets none. Messages are what the user wrote and what
the model answered (with a reasoning model's thinking beside the answer),
with the token counts the meter saw.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

TITLE_MAX_LENGTH = 200


class Conversation(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="conversations",
    )
    title = models.CharField(max_length=TITLE_MAX_LENGTH, blank=True)
    # A public model id. Not a foreign key: models come and go with discovery,
    # and a conversation outlives the model it was started with.
    model = models.CharField(max_length=200, blank=True)
    system_prompt = models.TextField(blank=True)
    # None: the model's recommended temperature (or the backend's default).
    temperature = models.FloatField(null=True, blank=True)
    # The project this conversation's turns bill (None: the user's own budget).
    project = models.ForeignKey(
        "projects.Project",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The newest message of the branch shown (chat.selectors.message_path);
    # None: the newest message of all.
    active_leaf = models.ForeignKey(
        "Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Moved by every new message, so the sidebar shows recent ones first.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            models.Index(
                fields=["user", "-updated_at"], name="chat_conversation_recent"
            )
        ]

    def __str__(self) -> str:
        return self.title or f"conversation {self.pk}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "user"
        ASSISTANT = "assistant", "assistant"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    # Messages form a tree: a regenerated answer or an edited question is a
    # sibling of the one it replaces, so nothing is thrown away. None: the
    # conversation's first message (or one of its edited versions).
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="children",
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    # Attached images as data URLs (what is sent to vision models).
    images = models.JSONField(default=list, blank=True)
    # Assistant messages: which model answered, how it ended, what it cost.
    model = models.CharField(max_length=200, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # A reasoning model's thinking before its answer, and how long it took.
    # Shown with the answer, never sent back to the model (chat.turns).
    reasoning = models.TextField(blank=True)
    reasoning_seconds = models.FloatField(null=True, blank=True)
    # The proxy's request id (the usage record's), to find the two together.
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.role} message {self.pk}"
