"""`/api/conversations/`: the chat's conversations in JSON, for the page.

Session authentication with CSRF (the DRF default in settings). Another
user's conversation is simply not found (404), whatever the method. Errors
read `{"error": {"code", "message"}}`, invalid input adds `fields`.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import Http404, HttpResponse
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.models import TITLE_MAX_LENGTH, Conversation, Message
from chat.selectors import (
    chat_model_get,
    chat_project_member,
    conversation_export_data,
    conversation_export_markdown,
    conversation_get,
    conversation_list,
    conversation_thread,
)
from chat.services import (
    conversation_branch_switch,
    conversation_create,
    conversation_delete,
    conversation_update,
)
from portal.apierrors import API_ERROR_SCHEMA

SYSTEM_PROMPT_MAX_LENGTH = 20_000


def conversation_summary(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.pk,
        "title": conversation.title,
        "model": conversation.model,
        "updated_at": conversation.updated_at.isoformat(),
    }


def message_data(message: Message, siblings: list[int] | None = None) -> dict[str, Any]:
    return {
        "id": message.pk,
        "parent": message.parent_id,
        # It and its siblings (other answers, other versions of a question).
        "siblings": siblings or [message.pk],
        "role": message.role,
        "content": message.content,
        "images": message.images,
        "model": message.model,
        "finish_reason": message.finish_reason,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "reasoning": message.reasoning,
        "reasoning_seconds": message.reasoning_seconds,
    }


def conversation_data(conversation: Conversation) -> dict[str, Any]:
    """The conversation and the branch of its messages shown."""
    thread = conversation_thread(conversation=conversation)
    return {
        **conversation_summary(conversation),
        "system_prompt": conversation.system_prompt,
        "temperature": conversation.temperature,
        "project": conversation.project_id,
        "messages": [message_data(m, thread.siblings[m.pk]) for m in thread.path],
    }


class ConversationSerializer(serializers.Serializer):
    title = serializers.CharField(
        max_length=TITLE_MAX_LENGTH, allow_blank=True, required=False
    )
    model = serializers.CharField(max_length=200, allow_blank=True, required=False)
    system_prompt = serializers.CharField(
        max_length=SYSTEM_PROMPT_MAX_LENGTH,
        allow_blank=True,
        required=False,
        trim_whitespace=False,
    )
    temperature = serializers.FloatField(
        min_value=0.0, max_value=2.0, allow_null=True, required=False
    )
    # The project the conversation bills; null: the user's own budget.
    project = serializers.IntegerField(allow_null=True, required=False)
    # PATCH only: show the branch through this message (its newest below).
    active_message = serializers.IntegerField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if isinstance(self.initial_data, dict):
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise ValidationError(
                    {name: ["This field cannot be set."] for name in unknown}
                )
        model = attrs.get("model")
        user = self.context["user"]
        if model and chat_model_get(user=user, public_id=model) is None:
            raise ValidationError(
                {"model": ["This model is not available to you now. Pick another."]}
            )
        project = attrs.get("project")
        if project is not None and not chat_project_member(
            user=user, project_id=project
        ):
            raise ValidationError(
                {"project": ["You are not a member of this project."]}
            )
        return attrs


class _ChatApiView(APIView):
    def _conversation(self, request: Request, conversation_id: int) -> Conversation:
        conversation = conversation_get(
            user=request.user, conversation_id=conversation_id
        )
        if conversation is None:
            raise Http404
        return conversation

    def _changes(self, request: Request) -> dict[str, Any]:
        serializer = ConversationSerializer(
            data=request.data, context={"user": request.user}
        )
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


# The OpenAPI description (drf-spectacular, /api/schema/): these APIViews build
# their answers by hand, so the schema is told what they read and write.
_SUMMARY_FIELDS = {
    "id": serializers.IntegerField(),
    "title": serializers.CharField(),
    "model": serializers.CharField(),
    "updated_at": serializers.DateTimeField(),
}
_SUMMARY = inline_serializer(name="ConversationSummary", fields=_SUMMARY_FIELDS)
_MESSAGE = inline_serializer(
    name="ChatMessage",
    fields={
        "id": serializers.IntegerField(),
        "parent": serializers.IntegerField(allow_null=True),
        "siblings": serializers.ListField(child=serializers.IntegerField()),
        "role": serializers.CharField(),
        "content": serializers.CharField(),
        "images": serializers.JSONField(),
        "model": serializers.CharField(),
        "finish_reason": serializers.CharField(),
        "prompt_tokens": serializers.IntegerField(allow_null=True),
        "completion_tokens": serializers.IntegerField(allow_null=True),
        "reasoning": serializers.CharField(),
        "reasoning_seconds": serializers.FloatField(allow_null=True),
    },
)
_DETAIL = inline_serializer(
    name="ConversationDetail",
    fields={
        **_SUMMARY_FIELDS,
        "system_prompt": serializers.CharField(),
        "temperature": serializers.FloatField(allow_null=True),
        "project": serializers.IntegerField(allow_null=True),
        "messages": serializers.ListField(child=_MESSAGE),
    },
)
_ERROR = API_ERROR_SCHEMA
_ERRORS = {
    400: OpenApiResponse(_ERROR, description="Invalid input (`fields`)."),
    403: OpenApiResponse(_ERROR, description="Not logged in, or CSRF failure."),
    404: OpenApiResponse(_ERROR, description="No such conversation of yours."),
}


class ConversationListView(_ChatApiView):
    @extend_schema(
        operation_id="conversations_list",
        parameters=[
            OpenApiParameter(
                "q",
                OpenApiTypes.STR,
                description=(
                    "Only conversations whose title contains this, or one of "
                    "whose messages matches it (full-text on PostgreSQL)."
                ),
            )
        ],
        responses={
            200: inline_serializer(
                name="ConversationList",
                fields={"data": serializers.ListField(child=_SUMMARY)},
            ),
            403: _ERRORS[403],
        },
    )
    def get(self, request: Request) -> Response:
        query = request.query_params.get("q", "")[:200]
        conversations = conversation_list(user=request.user, query=query)
        return Response({"data": [conversation_summary(c) for c in conversations]})

    @extend_schema(
        request=ConversationSerializer,
        responses={201: _DETAIL, 400: _ERRORS[400], 403: _ERRORS[403]},
    )
    def post(self, request: Request) -> Response:
        changes = self._changes(request)
        changes.pop("active_message", None)  # a new conversation has no messages
        conversation = conversation_create(user=request.user, **changes)
        return Response(conversation_data(conversation), status=status.HTTP_201_CREATED)


class ConversationDetailView(_ChatApiView):
    @extend_schema(responses={200: _DETAIL, 403: _ERRORS[403], 404: _ERRORS[404]})
    def get(self, request: Request, conversation_id: int) -> Response:
        return Response(conversation_data(self._conversation(request, conversation_id)))

    @extend_schema(request=ConversationSerializer, responses={200: _SUMMARY, **_ERRORS})
    def patch(self, request: Request, conversation_id: int) -> Response:
        conversation = self._conversation(request, conversation_id)
        changes = self._changes(request)
        message = changes.pop("active_message", None)
        if message is not None and not conversation_branch_switch(
            conversation=conversation, message_id=message
        ):
            raise ValidationError(
                {"active_message": ["No such message in this conversation."]}
            )
        conversation = conversation_update(conversation=conversation, **changes)
        return Response(conversation_summary(conversation))

    @extend_schema(responses={204: None, 403: _ERRORS[403], 404: _ERRORS[404]})
    def delete(self, request: Request, conversation_id: int) -> Response:
        conversation_delete(conversation=self._conversation(request, conversation_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _attachment(
    conversation: Conversation, body: str, *, extension: str, content_type: str
) -> HttpResponse:
    name = slugify(conversation.title)[:60] or "conversation"
    response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{name}-{conversation.pk}.{extension}"'
    )
    return response


class ConversationExportMarkdownView(_ChatApiView):
    @extend_schema(
        operation_id="conversations_export_markdown",
        responses={
            (200, "text/markdown"): OpenApiTypes.STR,
            403: _ERRORS[403],
            404: _ERRORS[404],
        },
    )
    def get(self, request: Request, conversation_id: int) -> HttpResponse:
        """The conversation as a Markdown file (a download)."""
        conversation = self._conversation(request, conversation_id)
        body = conversation_export_markdown(conversation=conversation)
        return _attachment(
            conversation, body, extension="md", content_type="text/markdown"
        )


class ConversationExportJsonView(_ChatApiView):
    @extend_schema(
        operation_id="conversations_export_json",
        responses={200: OpenApiTypes.OBJECT, 403: _ERRORS[403], 404: _ERRORS[404]},
    )
    def get(self, request: Request, conversation_id: int) -> HttpResponse:
        """The conversation as a JSON file (a download), messages included."""
        conversation = self._conversation(request, conversation_id)
        data = conversation_export_data(conversation=conversation)
        body = json.dumps(data, ensure_ascii=False, indent=2)
        return _attachment(
            conversation, body, extension="json", content_type="application/json"
        )
