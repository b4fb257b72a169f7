"""chat.turns.history_fit: which part of a conversation a turn sends."""

from __future__ import annotations

from chat.models import Conversation, Message
from chat.turns import history_fit


def _history(*contents: str) -> list[Message]:
    roles = ["user", "assistant"]
    return [
        Message(role=roles[index % 2], content=content)
        for index, content in enumerate(contents)
    ]


def test_a_short_conversation_is_sent_whole() -> None:
    history = _history("hi", "hello", "how are you?")
    kept, fit = history_fit(
        conversation=Conversation(system_prompt="Be brief."),
        history=history,
        window=2048,
    )
    assert kept == history
    assert (fit.trimmed, fit.sent, fit.window) == (0, 3, 2048)
    assert 0 < fit.tokens < 2048


def test_the_oldest_turns_go_first_and_the_kept_part_starts_with_a_question() -> None:
    # 2,048 tokens, 512 kept for the answer: each long answer is ~1,008.
    history = _history("q0", "x" * 3000, "q1", "y" * 3000, "q2", "z" * 3000, "now?")
    kept, fit = history_fit(
        conversation=Conversation(system_prompt=""), history=history, window=2048
    )
    assert [m.content for m in kept] == ["q2", "z" * 3000, "now?"]
    assert fit.trimmed == 4 and fit.sent == 3
    assert fit.tokens <= 2048 - 512


def test_the_newest_message_is_kept_even_when_it_alone_is_too_long() -> None:
    history = _history("q0", "a0", "w" * 9000)
    kept, fit = history_fit(
        conversation=Conversation(system_prompt="Be brief."),
        history=history,
        window=1024,
    )
    assert [m.content for m in kept] == ["w" * 9000]
    assert fit.trimmed == 2 and fit.tokens > 1024


def test_an_unknown_window_trims_nothing() -> None:
    history = _history("q0", "a0", "q1")
    kept, fit = history_fit(
        conversation=Conversation(system_prompt=""), history=history, window=0
    )
    assert kept == history and fit.trimmed == 0
