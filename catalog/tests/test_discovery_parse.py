"""Reading /v1/models answers in the dialects real backends speak (no I/O)."""

from __future__ import annotations

import pytest

from catalog.discovery import ModelListInvalid, model_list_parse, model_list_read


def parse_one(entry: dict, **top: object) -> object:
    (model,) = model_list_parse({"object": "list", "data": [entry], **top})
    return model


@pytest.mark.parametrize(
    ("model_id", "capabilities"),
    [
        ("BAAI/bge-m3-embed", {"embeddings"}),
        ("nomic-embed-text:latest", {"embeddings"}),
        ("Qwen3-Embedding-8B", {"embeddings"}),
        ("whisper-large-v3", {"transcription"}),
        ("openai/Whisper-Small", {"transcription"}),
        ("meta-llama/Llama-3.1-8B-Instruct", {"chat", "completions"}),
    ],
)
def test_it_guesses_capabilities_from_the_id_when_none_are_reported(
    model_id: str, capabilities: set[str]
) -> None:
    model = parse_one({"id": model_id})
    assert model.capabilities == capabilities
    assert model.capabilities_reported is False


def test_it_prefers_reported_capabilities_over_the_id() -> None:
    model = parse_one({"id": "embed-but-chat", "capabilities": ["chat", "vision"]})
    assert model.capabilities == {"chat", "completions", "vision"}
    assert model.capabilities_reported is True


def test_it_reads_capability_dicts_and_lm_studio_types() -> None:
    assert parse_one(
        {"id": "m", "capabilities": {"embeddings": True, "chat": False}}
    ).capabilities == {"embeddings"}
    assert parse_one({"id": "m", "type": "vlm"}).capabilities == {
        "chat",
        "completions",
        "vision",
    }
    assert parse_one({"id": "m", "type": "embeddings"}).capabilities == {"embeddings"}


def test_it_reads_llama_cpp_side_list_and_context() -> None:
    side = {
        "name": "smol",
        "model": "smol",
        "capabilities": ["completion", "multimodal"],
    }
    payload = {
        "models": [side],
        "object": "list",
        "data": [
            {
                "id": "smol",
                "owned_by": "llamacpp",
                "meta": {"n_ctx": 4096, "n_ctx_train": 8192, "n_vocab": 49152},
            }
        ],
    }
    (model,) = model_list_parse(payload)
    assert model.capabilities == {"chat", "completions", "vision"}
    assert model.context_window == 4096  # what it serves, not what it trained on


def test_a_generic_completion_report_does_not_outvote_an_embedding_id() -> None:
    # llama.cpp says "completion" of every model, embedding GGUFs included.
    payload = {
        "models": [{"model": "nomic-embed-text", "capabilities": ["completion"]}],
        "data": [{"id": "nomic-embed-text"}],
    }
    (model,) = model_list_parse(payload)
    assert model.capabilities == {"embeddings"}


@pytest.mark.parametrize(
    ("entry", "window"),
    [
        ({"max_model_len": 32768}, 32768),  # vLLM
        ({"meta": {"n_ctx_train": 2048}}, 2048),  # older llama.cpp
        ({"context_length": 131072}, 131072),  # OpenRouter-style
        ({"max_context_length": 16384}, 16384),  # LM Studio
        ({"context_window": 8000}, 8000),
        ({}, None),  # Ollama: nothing
        ({"max_model_len": True}, None),  # a JSON true is not a size
        ({"max_model_len": "4096"}, None),
        ({"max_model_len": 0}, None),
    ],
)
def test_it_reads_the_context_window_where_backends_report_it(
    entry: dict, window: int | None
) -> None:
    assert parse_one({"id": "m", **entry}).context_window == window


def test_it_reads_max_output_tokens_and_image_input_of_gateways() -> None:
    model = parse_one(
        {
            "id": "gateway/model",
            "context_length": 200000,
            "architecture": {"input_modalities": ["text", "image"]},
            "top_provider": {"max_completion_tokens": 8192},
        }
    )
    assert model.max_output_tokens == 8192
    assert "vision" in model.capabilities


def test_it_skips_entries_without_a_usable_id_and_keeps_one_per_id() -> None:
    payload = {
        "data": [{"id": ""}, {"object": "model"}, "text", {"id": "a"}, {"id": "a"}]
    }
    assert [model.id for model in model_list_parse(payload)] == ["a"]


@pytest.mark.parametrize(
    "payload", [[], {"data": {}}, {"models": []}, "not json", None]
)
def test_it_rejects_what_is_not_an_openai_model_list(payload: object) -> None:
    with pytest.raises(ModelListInvalid):
        model_list_parse(payload)


@pytest.mark.parametrize(
    ("model_id", "reason"),
    [
        ("evil\n\ndata: [DONE]", "control"),
        ("bell\x07", "control"),
        ("tab\tid", "control"),
        ("zero\u200bwidth", "invisible"),
        ("right\u202eto-left", "invisible"),
        ("no\u00a0break", "invisible"),
        ("line\u2028separator", "invisible"),
        (" padded", "whitespace"),
        ("m" * 201, "longer than 200"),
    ],
)
def test_it_skips_ids_that_cannot_be_names_and_says_why(
    model_id: str, reason: str
) -> None:
    listing = model_list_read({"data": [{"id": model_id}, {"id": "fine/model:8b"}]})
    assert [model.id for model in listing.models] == ["fine/model:8b"]
    (skipped,) = listing.skipped
    assert reason in skipped
    assert skipped.isprintable() and len(skipped) < 120


def test_an_id_of_exactly_200_characters_is_kept_whole() -> None:
    assert parse_one({"id": "m" * 200}).id == "m" * 200
