"""Reads for the chat: a user's conversations (never anyone else's) and the
models the chat offers them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog.models import Model
from catalog.selectors import models_for_user
from chat.models import Conversation, Message
from projects.models import ProjectMembership

# Sampling parameters the chat passes on from a model's recommended_params
# (staff set them in admin); anything else there is shown but not sent.
SAMPLING_PARAMS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "max_tokens",
    "seed",
)


@dataclass(frozen=True)
class ChatModel:
    """A model as the chat's picker shows it."""

    public_id: str
    display_name: str
    context_window: int
    max_output_tokens: int | None
    capabilities: tuple[str, ...]
    recommended_params: dict[str, Any] = field(default_factory=dict)
    # False: no backend holds the model now, so the first answer waits while
    # one loads it (for about `load_seconds`, when a load was measured).
    ready: bool = True
    load_seconds: float | None = None
    # False: every backend serving it failed its last health check.
    healthy: bool = True

    @property
    def vision(self) -> bool:
        return "vision" in self.capabilities

    @property
    def readiness(self) -> str:
        """What the picker says after the name: "" for a ready model, else
        "loads first", with the measured load time when there is one."""
        if self.ready:
            return ""
        if self.load_seconds:
            return _("loads first (about %(seconds)d s)") % {
                "seconds": max(1, round(self.load_seconds))
            }
        return _("loads first")

    @property
    def picker_label(self) -> str:
        readiness = self.readiness
        return f"{self.display_name} — {readiness}" if readiness else self.display_name

    def sampling_defaults(self) -> dict[str, int | float]:
        """The recommended parameters a request may carry (numbers only)."""
        return {
            name: value
            for name, value in self.recommended_params.items()
            if name in SAMPLING_PARAMS
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.public_id,
            "name": self.display_name,
            "context_window": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            "capabilities": list(self.capabilities),
            "recommended": self.sampling_defaults(),
            "ready": self.ready,
            "readiness": self.readiness,
        }


def chat_model_list(*, user: Any) -> list[ChatModel]:
    """The chat-capable models `user` may use now, by display name."""
    models = [m for m in models_for_user(user=user) if "chat" in m.capabilities]
    found = [
        ChatModel(
            public_id=model.public_id,
            display_name=model.display_name,
            context_window=model.context_window,
            max_output_tokens=model.max_output_tokens,
            capabilities=tuple(sorted(model.capabilities)),
            recommended_params=dict(model.recommended_params),
            ready=model.ready,
            load_seconds=model.load_seconds,
            healthy=any(route.healthy for route in model.routes),
        )
        for model in models
    ]
    return sorted(found, key=lambda m: m.display_name.lower())


def chat_models_granted(*, user: Any) -> bool:
    """Whether some enabled chat model is open to `user`, served now or not:
    with nothing to offer, the page tells an outage from a lack of access."""
    if not getattr(user, "is_active", False):
        return False
    return (
        Model.objects.filter(enabled=True, supports_chat=True)
        .filter(Q(everyone=True) | Q(access_groups__in=user.groups.all()))
        .exists()
    )


def chat_availability(*, user: Any, models: list[ChatModel]) -> str:
    """What the composer can do now: "open" (some model can answer),
    "outage" (the user has models, but none is served by a healthy backend:
    down, disabled or being updated) or "none" (no model is open to them)."""
    if any(model.healthy for model in models):
        return "open"
    if models or chat_models_granted(user=user):
        return "outage"
    return "none"


def chat_model_get(*, user: Any, public_id: str) -> ChatModel | None:
    if not public_id:
        return None
    for model in chat_model_list(user=user):
        if model.public_id == public_id:
            return model
    return None


def conversation_list(
    *, user: Any, query: str = "", limit: int = 100
) -> QuerySet[Conversation]:
    """The user's conversations, most recently active first; `query` matches
    titles (case-insensitive) and the text of messages (conversation_search).

    A conversation whose first turn failed is not listed: it has no answer and
    either a question (the turn was admitted, the model gave no text) or no
    title (refused before anything was stored). The row stays, so Retry on
    the open page still works; its first stored answer lists it. A
    conversation made empty with a title (the API) is listed."""
    answered = Message.objects.filter(
        conversation=OuterRef("pk"), role=Message.Role.ASSISTANT
    )
    asked = Message.objects.filter(conversation=OuterRef("pk"))
    conversations = Conversation.objects.filter(user=user).filter(
        Exists(answered) | (~Exists(asked) & ~Q(title=""))
    )
    query = query.strip()
    if query:
        conversations = conversation_search(conversations=conversations, query=query)
    return conversations.only("id", "title", "model", "updated_at")[:limit]


def conversation_search(
    *, conversations: QuerySet[Conversation], query: str
) -> QuerySet[Conversation]:
    """`conversations` whose title contains `query` or one of whose messages
    matches it: PostgreSQL full-text search (websearch syntax, English
    stemming: "dances" finds "dance") where the database is PostgreSQL, a
    case-insensitive substring elsewhere (SQLite, `make run`).

    The GIN index on the messages' text (migration chat/0006) keeps this
    quick: over 2,000 conversations of 20 messages, 57 to 83 ms with it, 3.1 s
    without. (Collecting every matching message in one subquery first was
    tried: 3 s for words found in every message.)"""
    if connection.vendor == "postgresql":
        search = SearchQuery(query, search_type="websearch", config="english")
        matching = Message.objects.annotate(
            document=SearchVector("content", config="english")
        ).filter(conversation=OuterRef("pk"), document=search)
    else:
        matching = Message.objects.filter(
            conversation=OuterRef("pk"), content__icontains=query
        )
    return conversations.filter(Q(title__icontains=query) | Exists(matching))


def conversation_get(*, user: Any, conversation_id: int) -> Conversation | None:
    """One of the user's own conversations; anyone else's is simply not found."""
    if not getattr(user, "is_authenticated", False):
        return None
    return Conversation.objects.filter(user=user, pk=conversation_id).first()


@dataclass(frozen=True)
class Thread:
    """A conversation's message tree as the page shows it: `path`, the branch
    shown (oldest first), and for each of its messages the ids of it and its
    siblings, oldest first (the page's "k/n" switcher)."""

    path: list[Message]
    siblings: dict[int, list[int]]


def conversation_thread(*, conversation: Conversation) -> Thread:
    """The branch shown: the path from the first message to the conversation's
    active leaf (the newest message when none is set). One query."""
    messages = {m.pk: m for m in Message.objects.filter(conversation=conversation)}
    if not messages:
        return Thread(path=[], siblings={})
    children: dict[int | None, list[int]] = {}
    for pk in sorted(messages):
        children.setdefault(messages[pk].parent_id, []).append(pk)
    node = messages.get(conversation.active_leaf_id or 0) or messages[max(messages)]
    path: list[Message] = []
    while node is not None and len(path) < len(messages):
        path.append(node)
        node = messages.get(node.parent_id) if node.parent_id else None
    path.reverse()
    return Thread(path=path, siblings={m.pk: children[m.parent_id] for m in path})


def message_list(*, conversation: Conversation) -> list[Message]:
    """The branch shown, oldest first: what the page shows, the exports hold
    and the next turn sends (chat.turns)."""
    return conversation_thread(conversation=conversation).path


def message_branch_leaf(*, conversation: Conversation, message_id: int) -> int | None:
    """The leaf to show for the branch through `message_id`: the newest
    message below it (or itself); None when it is not in the conversation."""
    parents = dict(
        Message.objects.filter(conversation=conversation).values_list("id", "parent_id")
    )
    if message_id not in parents:
        return None
    below = {message_id}
    for pk in sorted(parents):  # a child's id is always above its parent's
        if parents[pk] in below:
            below.add(pk)
    return max(below)


def conversation_export_data(*, conversation: Conversation) -> dict[str, Any]:
    """A conversation as a JSON export: its settings and every message of the
    branch shown, with the thinking and token counts (images as the data URLs
    sent)."""
    return {
        "id": conversation.pk,
        "title": conversation.title,
        "model": conversation.model,
        "system_prompt": conversation.system_prompt,
        "temperature": conversation.temperature,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "messages": [
            {
                "role": m.role,
                "content": m.content,
                "images": m.images,
                "reasoning": m.reasoning,
                "model": m.model,
                "finish_reason": m.finish_reason,
                "prompt_tokens": m.prompt_tokens,
                "completion_tokens": m.completion_tokens,
                "created_at": m.created_at.isoformat(),
            }
            for m in message_list(conversation=conversation)
        ],
    }


def conversation_export_markdown(*, conversation: Conversation) -> str:
    """A conversation as a Markdown export: a heading per message, the text as
    written (answers are Markdown already), thinking as a quote, images as a
    note (they are in the JSON export)."""
    lines = [f"# {conversation.title or 'New chat'}", ""]
    if conversation.model:
        lines += [f"Model: {conversation.model}", ""]
    if conversation.system_prompt.strip():
        lines += ["## System prompt", "", conversation.system_prompt.strip(), ""]
    for message in message_list(conversation=conversation):
        if message.role == Message.Role.USER:
            lines += ["## You", ""]
        else:
            lines += [
                f"## Assistant ({message.model})" if message.model else "## Assistant",
                "",
            ]
        if message.reasoning:
            quoted = [f"> {line}".rstrip() for line in message.reasoning.splitlines()]
            lines += ["> **Thinking**", ">", *quoted, ""]
        if message.content:
            lines += [message.content.rstrip(), ""]
        if message.images:
            lines += [f"*[{len(message.images)} image(s) attached]*", ""]
    return "\n".join(lines).rstrip() + "\n"


@dataclass(frozen=True)
class ChatProject:
    id: int
    name: str


def chat_projects(*, user: Any) -> list[ChatProject]:
    """The running projects a conversation of `user` may bill."""
    today = timezone.localdate()
    memberships = ProjectMembership.objects.filter(
        user=user, project__starts_on__lte=today, project__ends_on__gte=today
    ).select_related("project")
    return [ChatProject(id=m.project_id, name=m.project.name) for m in memberships]


def chat_project_member(*, user: Any, project_id: int) -> bool:
    return ProjectMembership.objects.filter(user=user, project_id=project_id).exists()
