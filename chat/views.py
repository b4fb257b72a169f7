"""The chat page: the portal's home for a logged-in user."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from chat.api import conversation_data
from chat.selectors import (
    chat_availability,
    chat_model_list,
    chat_projects,
    conversation_get,
    conversation_list,
)
from chat.stream import STREAM_PATH
from chat.turns import conversation_context


@login_required
@ensure_csrf_cookie
def chat_page(request: HttpRequest, conversation_id: int | None = None) -> HttpResponse:
    conversation = None
    if conversation_id is not None:
        conversation = conversation_get(
            user=request.user, conversation_id=conversation_id
        )
        if conversation is None:
            raise Http404("No such conversation.")
    models = chat_model_list(user=request.user)
    projects = chat_projects(user=request.user)
    state = {
        "conversation": conversation_data(conversation) if conversation else None,
        "models": [model.as_dict() for model in models],
        "context": (
            conversation_context(user=request.user, conversation=conversation)
            if conversation
            else None
        ),
    }
    return render(
        request,
        "chat/chat.html",
        {
            "conversation": conversation,
            "conversations": conversation_list(user=request.user),
            "models": models,
            "availability": chat_availability(user=request.user, models=models),
            "projects": projects,
            "chat_state": state,
            "stream_url": "/" + STREAM_PATH,
        },
    )
