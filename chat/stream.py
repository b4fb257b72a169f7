"""The chat's streaming call: one turn of a conversation through the proxy.

`chat_stream_application` is mounted by portal/asgi.py at STREAM_PATH. The
browser door (apiproxy.browser) checks the session and CSRF token and meters
the call as browser traffic; `ChatTurn` says what the call is: it builds the
completion request from the stored conversation and the new turn, records
the user's side once the proxy has admitted the request, and the answer
after it.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest

from accounts.selectors import Principal
from apiproxy.browser import BrowserResult, browser_application
from apiproxy.errors import ProxyError
from chat.models import Conversation
from chat.selectors import (
    ChatModel,
    chat_model_get,
    chat_project_member,
    conversation_get,
    message_list,
)
from chat.services import TurnError, conversation_reply_record, conversation_turn_start
from chat.turns import (
    TurnRequest,
    TurnRequestInvalid,
    completion_body_build,
    history_fit,
    turn_history,
    turn_request_parse,
)

STREAM_PATH = "chat/stream/"


class ChatTurn:
    """apiproxy.browser.BrowserTurn for the chat (one per request)."""

    def __init__(self) -> None:
        self.turn: TurnRequest | None = None
        self.conversation_id: int | None = None
        self.question_id: int | None = None
        self.model = ""
        self.project_id: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []

    def prepare(self, *, request: HttpRequest, principal: Principal) -> bytes:
        try:
            turn = turn_request_parse(request.body)
        except TurnRequestInvalid as error:
            raise ProxyError(400, str(error), code="invalid_turn") from None
        conversation = conversation_get(
            user=request.user, conversation_id=turn.conversation_id
        )
        if conversation is None:
            raise ProxyError(
                404, "This conversation does not exist.", code="conversation_not_found"
            )
        model = chat_model_get(user=request.user, public_id=conversation.model)
        if model is None:
            message = (
                f"The model '{conversation.model}' is not available to you now. "
                "Pick another model."
                if conversation.model
                else "Pick a model first."
            )
            raise ProxyError(400, message, code="model_not_found", param="model")
        if conversation.project_id is not None and not chat_project_member(
            user=request.user, project_id=conversation.project_id
        ):
            raise ProxyError(
                403,
                "You are no longer a member of the project this conversation bills. "
                "Choose another under Settings, or your own budget.",
                code="project_membership_required",
                param="project",
            )
        self.project_id = conversation.project_id
        if turn.images and not model.vision:
            raise ProxyError(
                400,
                f"{model.display_name} cannot read images. Pick a model marked "
                "'vision', or remove the images.",
                code="model_lacks_vision",
            )
        body = self.body_build(conversation=conversation, model=model, turn=turn)
        self.turn, self.conversation_id, self.model = (
            turn,
            conversation.pk,
            model.public_id,
        )
        return json.dumps(body, separators=(",", ":")).encode()

    def body_build(
        self, *, conversation: Conversation, model: ChatModel, turn: TurnRequest
    ) -> dict[str, Any]:
        """The completion request: the stored conversation and the new turn,
        without its oldest messages where they no longer fit the window."""
        try:
            history = turn_history(
                conversation=conversation,
                stored=list(message_list(conversation=conversation)),
                action=turn.action,
                content=turn.content,
                images=turn.images,
                message=turn.message,
            )
        except TurnError as error:
            raise ProxyError(400, str(error), code="invalid_turn") from None
        history, fit = history_fit(
            conversation=conversation, history=history, window=model.context_window
        )
        self.headers = fit.headers()
        return completion_body_build(
            conversation=conversation, history=history, model=model
        )

    def bills_project(self) -> int | None:
        return self.project_id

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        return self.headers

    def admitted(self) -> None:
        """The proxy admitted the turn: record the user's side now, so that a
        refused turn never becomes part of the conversation."""
        conversation = Conversation.objects.filter(pk=self.conversation_id).first()
        if conversation is None or self.turn is None:
            return
        try:
            question = conversation_turn_start(
                conversation=conversation,
                action=self.turn.action,
                content=self.turn.content,
                images=self.turn.images,
                message=self.turn.message,
            )
        except TurnError as error:
            # The conversation changed since `prepare` (another tab).
            raise ProxyError(409, str(error), code="invalid_turn") from None
        self.question_id = question.pk

    def finish(self, *, result: BrowserResult) -> None:
        if self.conversation_id is None or self.question_id is None:
            return
        outcome = result.outcome
        finish_reason = outcome.finish_reason or ("error" if result.error else "")
        conversation_reply_record(
            conversation_id=self.conversation_id,
            user_message_id=self.question_id,
            content=result.text,
            model=self.model,
            finish_reason=finish_reason,
            prompt_tokens=outcome.prompt_tokens or None,
            completion_tokens=outcome.completion_tokens or None,
            request_id=outcome.request_id,
            reasoning=result.reasoning,
            reasoning_seconds=result.reasoning_seconds,
        )


chat_stream_application = browser_application(ChatTurn)
