"""The SSE observer: forwards events unchanged, reads usage, strips or
synthesises the usage chunk."""

from __future__ import annotations

import json
import re

import pytest

from apiproxy.observer import TOKENS_PER_REQUEST_MAX, StreamObserver


def chunk(content: str | None = None, *, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    payload = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


USAGE = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"m",'
    b'"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}\n\n'
)
DONE = b"data: [DONE]\n\n"


def test_it_forwards_events_byte_for_byte_and_counts_content() -> None:
    observer = StreamObserver(strip_usage=False, synthesise_usage=False, model="m")
    stream = chunk("Hel") + chunk("lo") + chunk(finish="stop") + USAGE + DONE
    assert observer.feed(stream) == stream
    assert observer.content_chunks == 2
    assert observer.completion_tokens_final() == 3
    assert observer.prompt_tokens == 7
    assert observer.finish_reason == "stop"
    assert observer.done
    assert observer.usage_source == "reported"


def test_it_holds_back_a_partial_event_until_it_is_complete() -> None:
    observer = StreamObserver(strip_usage=False, synthesise_usage=False, model="m")
    event = chunk("Hi")
    assert observer.feed(event[:10]) == b""
    assert observer.feed(event[10:]) == event


def test_it_removes_the_usage_chunk_the_client_did_not_ask_for() -> None:
    observer = StreamObserver(strip_usage=True, synthesise_usage=False, model="m")
    out = observer.feed(chunk("a") + USAGE + DONE)
    assert b'"usage"' not in out
    assert out == chunk("a") + DONE
    assert observer.completion_tokens_final() == 3


def test_it_counts_and_synthesises_usage_when_the_backend_sends_none() -> None:
    observer = StreamObserver(strip_usage=False, synthesise_usage=True, model="m")
    out = observer.feed(chunk("a") + chunk("b") + chunk(finish="length") + DONE)
    events = [e for e in out.split(b"\n\n") if e]
    usage_event = json.loads(events[-2][6:])
    assert usage_event["usage"]["completion_tokens"] == 2
    assert usage_event["choices"] == []
    assert events[-1] == b"data: [DONE]"
    assert observer.usage_source == "counted"


def test_it_accepts_crlf_framing() -> None:
    observer = StreamObserver(strip_usage=False, synthesise_usage=False, model="m")
    out = observer.feed(chunk("x").replace(b"\n", b"\r\n"))
    assert out == chunk("x")


MARKER = chunk("data: [DONE]")  # the model says the end marker in its text


def test_text_saying_data_done_is_text_not_the_end() -> None:
    observer = StreamObserver(strip_usage=False, synthesise_usage=True, model="m")
    out = observer.feed(chunk("a") + MARKER + chunk("b"))
    assert out == chunk("a") + MARKER + chunk("b"), "forwarded untouched"
    assert not observer.done and observer.content_chunks == 3
    end = observer.feed(DONE)
    assert observer.done
    usage_event, done = [e for e in end.split(b"\n\n") if e]
    assert json.loads(usage_event[6:])["usage"]["completion_tokens"] == 3
    assert done == b"data: [DONE]"


def test_the_synthesised_usage_goes_before_the_event_that_ends_the_stream() -> None:
    observer = StreamObserver(strip_usage=False, synthesise_usage=True, model="m")
    ending = b"id: 9\ndata: [DONE]\n\n"
    out = observer.feed(MARKER + ending)
    assert out.startswith(MARKER + b'data: {"id":"chatcmpl-1"')
    assert out.endswith(b"\n\n" + ending)


def test_a_crlf_split_between_reads_is_still_framing() -> None:
    observer = StreamObserver(strip_usage=False, synthesise_usage=False, model="m")
    framed = (chunk("x") + DONE).replace(b"\n", b"\r\n")
    cut = framed.index(b"\r\n\r\n") + 1  # between a CR and its LF
    assert observer.feed(framed[:cut]) == b""
    assert observer.feed(framed[cut:]) == chunk("x") + DONE
    assert observer.done


@pytest.mark.parametrize(
    ("reported", "billed"),
    [(-5, 0), (12, 12), (10**13, TOKENS_PER_REQUEST_MAX), (True, None), ("7", None)],
)
def test_reported_usage_is_clamped(reported: object, billed: int | None) -> None:
    observer = StreamObserver(strip_usage=True, synthesise_usage=False, model="m")
    usage = {"prompt_tokens": reported, "completion_tokens": reported}
    event = json.dumps({"choices": [], "usage": usage}).encode()
    observer.feed(b"data: " + event + b"\n\n" + DONE)
    assert (observer.prompt_tokens, observer.completion_tokens) == (billed, billed)


def _event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


# Streams of every kind the observer reads: plain tokens, thoughts (both
# spellings), tool calls, an error, the Responses API, text that mentions the
# markers, CRLF framing; each also split into uneven reads below.
STREAMS = [
    chunk("Hel") + chunk("lo") + chunk(finish="stop") + USAGE + DONE,
    chunk("a") + chunk("b") + chunk(finish="length") + DONE,
    _event({"id": "c", "choices": [{"delta": {"reasoning_content": "hm"}}]})
    + _event({"id": "c", "choices": [{"delta": {"reasoning": "so"}}]})
    + chunk("x")
    + DONE,
    _event(
        {"choices": [{"delta": {"tool_calls": [{"function": {"arguments": "{}"}}]}}]}
    )
    + chunk(finish="tool_calls")
    + DONE,
    chunk("a") + b'data: {"error": {"message": "boom"}}\n\n' + DONE,
    _event({"type": "response.output_text.delta", "delta": "Hi"})
    + _event({"type": "response.reasoning_text.delta", "delta": "hm"})
    + _event(
        {
            "type": "response.completed",
            "response": {"usage": {"input_tokens": 4, "output_tokens": 2}},
        }
    ),
    chunk('usage" error" "finish_reason":"x" response.completed [DONE]') + DONE,
    (chunk("r") + chunk(finish="stop") + USAGE + DONE).replace(b"\n", b"\r\n"),
]


def _state(observer: StreamObserver) -> tuple:
    return (
        observer.content_chunks,
        observer.reasoning_chunks,
        observer.prompt_tokens,
        observer.completion_tokens,
        observer.reasoning_tokens,
        observer.finish_reason,
        observer.done,
        observer.failed,
        observer.stream_id,
        observer.first_token_at is None,
    )


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("read_size", [7, 64, 10_000])
@pytest.mark.parametrize("synthesise", [False, True])
def test_the_token_fast_path_reads_a_stream_as_the_full_reading_does(
    stream: bytes, read_size: int, synthesise: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read of token events only skips every check but the count and the
    id; over any stream and any split into reads, nothing may differ from
    reading every event in full."""
    import apiproxy.observer as module

    def read(fast: bool) -> tuple[bytes, tuple]:
        with monkeypatch.context() as patched:
            if not fast:  # a screen that always hits: every read in full
                patched.setattr(module, "_RARE", re.compile(rb""))
            observer = StreamObserver(
                strip_usage=not synthesise, synthesise_usage=synthesise, model="m"
            )
            out = b"".join(
                observer.feed(stream[at : at + read_size])
                for at in range(0, len(stream), read_size)
            )
        # The synthesised usage chunk carries the time: compare without it.
        return re.sub(rb'"created": ?\d+', b"", out), _state(observer)

    assert read(fast=True) == read(fast=False)
