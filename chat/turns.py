"""One turn of a chat, as plain data: what the browser asks for, and the
OpenAI request the chat sends through the proxy for it.

The browser sends only the conversation, the action and the new text; the
request itself (history, system prompt, sampling parameters) is built here
from what is stored, so the stored conversation is the one the model saw.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chat.models import Conversation, Message
from chat.selectors import ChatModel
from chat.services import ACTIONS, turn_check

MAX_IMAGES = 4
_DATA_URL = re.compile(r"^data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]+$")


class TurnRequestInvalid(ValueError):
    pass


def text_storable(text: str) -> bool:
    """Whether PostgreSQL can store `text`: no NUL and no lone surrogate (JSON
    lets a client send both as escapes)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class TurnRequest:
    conversation_id: int
    action: str
    content: str
    images: tuple[str, ...]


def turn_request_parse(raw: bytes) -> TurnRequest:
    """The browser's request, checked: a conversation id, a known action, text,
    and images as data URLs of common formats."""
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        raise TurnRequestInvalid("The request is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise TurnRequestInvalid("The request must be a JSON object.")
    conversation_id = payload.get("conversation")
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
        raise TurnRequestInvalid("'conversation' must be a conversation id.")
    action = payload.get("action", "send")
    if action not in ACTIONS:
        raise TurnRequestInvalid(f"'action' must be one of {', '.join(ACTIONS)}.")
    content = payload.get("content", "")
    if not isinstance(content, str):
        raise TurnRequestInvalid("'content' must be text.")
    if not text_storable(content):
        raise TurnRequestInvalid(
            "The message holds characters that are not text (NUL or a lone "
            "surrogate). Remove them and send again."
        )
    images = payload.get("images", [])
    if not isinstance(images, list) or len(images) > MAX_IMAGES:
        raise TurnRequestInvalid(f"Attach at most {MAX_IMAGES} images.")
    for image in images:
        if not isinstance(image, str) or not _DATA_URL.match(image):
            raise TurnRequestInvalid(
                "Images must be PNG, JPEG, GIF or WebP files sent as data URLs."
            )
    return TurnRequest(conversation_id, action, content, tuple(images))


def _content(message: Message, *, vision: bool) -> str | list[dict[str, Any]]:
    if not message.images:
        return message.content
    if not vision:
        # A model without vision would refuse the whole request over an image
        # sent earlier in the conversation; it gets a note instead.
        note = f"[{len(message.images)} image(s) not shown to this model]"
        return f"{message.content}\n\n{note}".strip()
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "text": message.content})
    parts += [
        {"type": "image_url", "image_url": {"url": url}} for url in message.images
    ]
    return parts


def turn_history(
    *,
    conversation: Conversation,
    stored: Sequence[Message],
    action: str,
    content: str,
    images: Sequence[str],
) -> list[Message]:
    """The messages the model is sent for this turn, oldest first, as they
    will be stored once the proxy admits the turn; nothing is written here.
    `stored` is the conversation's messages, oldest first."""
    last_user = next((m for m in reversed(stored) if m.role == Message.Role.USER), None)
    turn_check(action=action, content=content, images=images, last_user=last_user)
    if action == "send" or last_user is None:
        question = Message(
            conversation=conversation,
            role=Message.Role.USER,
            content=content,
            images=list(images),
        )
        return [*stored, question]
    before = list(stored[: stored.index(last_user)])
    if action == "edit":
        edited = Message(
            conversation=conversation,
            role=Message.Role.USER,
            content=content,
            images=list(last_user.images),
        )
        return [*before, edited]
    return [*before, last_user]


def completion_body_build(
    *, conversation: Conversation, history: Sequence[Message], model: ChatModel
) -> dict[str, Any]:
    """The chat completion request for `history` (oldest first, ending with
    the user message to answer): the conversation's system prompt, the model's
    recommended sampling parameters, the conversation's temperature over
    them; streamed, with usage (shown under each answer)."""
    messages: list[dict[str, Any]] = []
    if conversation.system_prompt.strip():
        messages.append({"role": "system", "content": conversation.system_prompt})
    for message in history:
        if message.role == Message.Role.ASSISTANT and not message.content:
            continue
        messages.append(
            {"role": message.role, "content": _content(message, vision=model.vision)}
        )
    body: dict[str, Any] = {"model": model.public_id, **model.sampling_defaults()}
    if conversation.temperature is not None:
        body["temperature"] = conversation.temperature
    body.update(messages=messages, stream=True, stream_options={"include_usage": True})
    return body
