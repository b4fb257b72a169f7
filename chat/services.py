"""Writes for the chat: conversations and the turns of a conversation.

A turn is written in two steps around the streamed answer:
`conversation_turn_start` records what the user asked once the proxy has
admitted the request, and `conversation_reply_record` records the answer once
the response has ended, however it ended (finished, stopped by the user, cut
by an error).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from chat.models import TITLE_MAX_LENGTH, Conversation, Message
from chat.selectors import message_branch_leaf, message_list

TITLE_FROM_MESSAGE_LENGTH = 60
ACTIONS = ("send", "regenerate", "edit")
_TRAILING_ELLIPSIS = re.compile(r"\s*(?:…|\.\.\.)+$")
# "Not given", where None is a meaningful value (temperature).
_UNSET: Any = object()


def _storable(text: str) -> str:
    """`text` as PostgreSQL can store it: a backend's stream may carry NUL or
    a lone surrogate (JSON escapes), which would lose the whole answer."""
    text = text.replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8")


class TurnError(ValueError):
    """The turn cannot be taken (nothing to regenerate, an empty message)."""


def _title_from(content: str, images: Sequence[str]) -> str:
    first_line = next(
        (line.strip() for line in content.splitlines() if line.strip()), ""
    )
    if not first_line:
        return "Image" if images else "New chat"
    # No "…" is stored: the list cuts long titles with CSS (text-overflow),
    # and a search or an export sees the title as written.
    title = first_line[:TITLE_FROM_MESSAGE_LENGTH].rstrip()
    return _TRAILING_ELLIPSIS.sub("", title) or title


def conversation_create(
    *,
    user: Any,
    title: str = "",
    model: str = "",
    system_prompt: str = "",
    temperature: float | None = None,
    project: int | None = None,
) -> Conversation:
    """A new, empty conversation of `user`. Its title stays empty until set or
    taken from the first message. `project`: the id of a project it bills
    (membership checked by the caller)."""
    return Conversation.objects.create(
        user=user,
        title=title.strip()[:TITLE_MAX_LENGTH],
        model=model,
        system_prompt=system_prompt,
        temperature=temperature,
        project_id=project,
    )


def conversation_update(
    *,
    conversation: Conversation,
    title: str | None = None,
    model: str | None = None,
    system_prompt: str | None = None,
    temperature: float | None = _UNSET,
    project: int | None = _UNSET,
) -> Conversation:
    """Change the given settings only (None leaves a field alone, except for
    `temperature`, where None means "the model's recommendation", and
    `project`, where None means "the user's own budget")."""
    changed: list[str] = []
    if title is not None:
        conversation.title = title.strip()[:TITLE_MAX_LENGTH]
        changed.append("title")
    if model is not None:
        conversation.model = model
        changed.append("model")
    if system_prompt is not None:
        conversation.system_prompt = system_prompt
        changed.append("system_prompt")
    if temperature is not _UNSET:
        conversation.temperature = temperature
        changed.append("temperature")
    if project is not _UNSET:
        conversation.project_id = project
        changed.append("project")
    if changed:
        conversation.save(update_fields=[*changed, "updated_at"])
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    """Delete a conversation and its messages. A reply still streaming into
    it is then simply not recorded (conversation_reply_record)."""
    conversation.delete()


def turn_question(
    *, path: Sequence[Message], action: str, message_id: int | None = None
) -> Message | None:
    """The user message a regenerate or an edit is about: `message_id` (an
    edit of any question on the branch shown), else the branch's last one."""
    if action == "edit" and message_id is not None:
        for message in path:
            if message.pk == message_id and message.role == Message.Role.USER:
                return message
        raise TurnError("That message is not on the branch shown. Reload the page.")
    return next((m for m in reversed(path) if m.role == Message.Role.USER), None)


def turn_check(
    *, action: str, content: str, images: Sequence[str], last_user: Message | None
) -> None:
    """Whether the turn makes sense; TurnError says why not. `last_user`: the
    question a regenerate or an edit is about (turn_question)."""
    if action not in ACTIONS:
        raise TurnError(f"Unknown action {action!r}.")
    if action == "send":
        if not content.strip() and not images:
            raise TurnError("Write a message or attach an image first.")
    elif last_user is None:
        raise TurnError("There is no message of yours to answer yet.")
    elif action == "edit" and not content.strip() and not last_user.images:
        raise TurnError("The edited message is empty.")


@transaction.atomic
def conversation_turn_start(
    *,
    conversation: Conversation,
    action: str,
    content: str = "",
    images: Sequence[str] = (),
    message: int | None = None,
) -> Message:
    """Record the user's side of a turn and return the user message the
    answer will follow. The chat calls it only once the proxy has admitted the
    turn (chat.stream), so a refused turn (too long for the model, over a
    limit) leaves the conversation as it was. Nothing is thrown away: the
    messages form a tree, and the conversation shows one branch of it.

    - send: a new user message (text, images or both) after the branch shown;
    - regenerate: answer the branch's last user message again (the new answer
      becomes a sibling of the old one when it is recorded, so a refused
      request, e.g. over the rate limit, changes nothing);
    - edit: a sibling of user message `message` (default: the branch's last)
      with `content` and its images, shown at once; the old question and what
      followed it stay on their own branch.
    """
    locked = Conversation.objects.select_for_update().filter(pk=conversation.pk).first()
    if locked is None:
        raise TurnError("This conversation was deleted.")
    path = message_list(conversation=locked)
    question = turn_question(path=path, action=action, message_id=message)
    turn_check(action=action, content=content, images=images, last_user=question)
    changed = ["updated_at"]
    if action == "regenerate" and question is not None:
        asked = question
    else:
        edited = question if action == "edit" else None
        asked = Message.objects.create(
            conversation=locked,
            parent_id=edited.parent_id if edited else (path[-1].pk if path else None),
            role=Message.Role.USER,
            content=content,
            images=list(edited.images) if edited else list(images),
        )
        locked.active_leaf = asked
        changed.append("active_leaf")
    if not locked.title:
        locked.title = _title_from(asked.content, asked.images)
        changed.append("title")
    locked.save(update_fields=changed)
    conversation.title, conversation.active_leaf_id = (
        locked.title,
        locked.active_leaf_id,
    )
    return asked


@transaction.atomic
def conversation_reply_record(
    *,
    conversation_id: int,
    user_message_id: int,
    content: str,
    model: str,
    finish_reason: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    request_id: str,
    reasoning: str = "",
    reasoning_seconds: float | None = None,
) -> Message | None:
    """Record the answer to `user_message_id` as a new child of it (a
    regenerated answer is a sibling of the earlier ones, which stay), and
    show its branch.

    Called once per streamed request, after the response ended, with the text
    the browser was sent: a stream the user stopped keeps what was shown. A
    request that produced no text records nothing (the browser showed an
    error instead), and neither does one whose conversation or question was
    deleted meanwhile. A reasoning model's thinking is kept beside the answer
    (an answer stopped while the model was still thinking keeps the thinking
    alone); chat.turns never sends it back to the model.
    """
    conversation = (
        Conversation.objects.select_for_update().filter(pk=conversation_id).first()
    )
    if conversation is None:
        return None
    question = Message.objects.filter(
        pk=user_message_id, conversation=conversation, role=Message.Role.USER
    ).first()
    if question is None or not (content or reasoning):
        return None
    reply = Message.objects.create(
        conversation=conversation,
        parent=question,
        role=Message.Role.ASSISTANT,
        content=_storable(content),
        reasoning=_storable(reasoning),
        reasoning_seconds=reasoning_seconds,
        model=model,
        finish_reason=finish_reason[:32],
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        request_id=request_id[:64],
    )
    conversation.updated_at = timezone.now()
    conversation.active_leaf = reply
    conversation.save(update_fields=["updated_at", "active_leaf"])
    return reply


def conversation_branch_switch(*, conversation: Conversation, message_id: int) -> bool:
    """Show the branch through message `message_id` (its newest message below
    it), so a reload shows the same branch; False when the message is not
    in the conversation. `updated_at` stays: switching is not activity."""
    leaf = message_branch_leaf(conversation=conversation, message_id=message_id)
    if leaf is None:
        return False
    Conversation.objects.filter(pk=conversation.pk).update(active_leaf_id=leaf)
    conversation.active_leaf_id = leaf
    return True
