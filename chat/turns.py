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
from chat.selectors import ChatModel, chat_model_get, message_list
from chat.services import ACTIONS, turn_check, turn_question

MAX_IMAGES = 4
# The context estimate errs high, so a kept history fits: ~3 characters a
# token (English BPE averages ~4), a message's role markers, the template's
# own text, an image as the proxy's allowance counts it. The answer's share
# is kept free: min(ANSWER_RESERVE, window / 4).
CHARS_PER_TOKEN = 3
MESSAGE_TOKENS = 8
TEMPLATE_TOKENS = 32
IMAGE_TOKENS = 1024
ANSWER_RESERVE = 1024
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
    # edit: the user message edited (None: the branch's last).
    message: int | None = None


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
    message = payload.get("message")
    if message is not None and (
        not isinstance(message, int) or isinstance(message, bool)
    ):
        raise TurnRequestInvalid("'message' must be a message id.")
    return TurnRequest(conversation_id, action, content, tuple(images), message)


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
    message: int | None = None,
) -> list[Message]:
    """The messages the model is sent for this turn, oldest first, as they
    will be stored once the proxy admits the turn; nothing is written here.
    `stored` is the branch shown (chat.selectors.message_list), oldest first:
    other branches are never sent. `message`: the user message an edit
    replaces on it (None: the last)."""
    last_user = turn_question(path=stored, action=action, message_id=message)
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


@dataclass(frozen=True)
class ContextFit:
    """What a turn sends of its history: `trimmed` oldest messages left out,
    about `tokens` tokens of the model's `window` used by what is sent."""

    trimmed: int
    sent: int
    tokens: int
    window: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        """For the page, on the answer and on a refusal alike."""
        return [
            (b"x-chat-trimmed", str(self.trimmed).encode()),
            (b"x-chat-sent", str(self.sent).encode()),
            (b"x-chat-context-tokens", str(self.tokens).encode()),
            (b"x-chat-context-window", str(self.window).encode()),
        ]

    def as_dict(self) -> dict[str, int]:
        return {
            "trimmed": self.trimmed,
            "sent": self.sent,
            "tokens": self.tokens,
            "window": self.window,
        }


def tokens_estimate(*, text: str, images: int = 0) -> int:
    """An estimate of a message's tokens that errs high."""
    return -(-len(text) // CHARS_PER_TOKEN) + MESSAGE_TOKENS + images * IMAGE_TOKENS


def answer_reserve(window: int) -> int:
    return min(ANSWER_RESERVE, window // 4)


def history_fit(
    *, conversation: Conversation, history: Sequence[Message], window: int
) -> tuple[list[Message], ContextFit]:
    """The newest part of `history` (oldest first) that fits the model's
    `window` with room left for the answer. The system prompt and the newest
    message are always kept (a message too long alone is the proxy's to
    refuse, with the real count); the kept part starts with a user message,
    as chat templates expect."""
    if window <= 0:  # not known: the proxy and the backend decide
        return list(history), ContextFit(0, len(history), 0, 0)
    fixed = TEMPLATE_TOKENS
    if conversation.system_prompt.strip():
        fixed += tokens_estimate(text=conversation.system_prompt)
    budget = window - answer_reserve(window) - fixed
    sizes = [tokens_estimate(text=m.content, images=len(m.images)) for m in history]
    start, used = len(history), 0
    while start > 0 and (start == len(history) or used + sizes[start - 1] <= budget):
        start -= 1
        used += sizes[start]
    while start < len(history) - 1 and history[start].role != Message.Role.USER:
        used -= sizes[start]
        start += 1
    kept = list(history[start:])
    return kept, ContextFit(
        trimmed=start, sent=len(kept), tokens=fixed + used, window=window
    )


def conversation_context(
    *, user: Any, conversation: Conversation
) -> dict[str, int] | None:
    """What the next turn would send of the stored conversation (for the
    page's note and meter), or None without a usable model or messages."""
    model = chat_model_get(user=user, public_id=conversation.model)
    stored = list(message_list(conversation=conversation))
    if model is None or not model.context_window or not stored:
        return None
    _, fit = history_fit(
        conversation=conversation, history=stored, window=model.context_window
    )
    return fit.as_dict()
