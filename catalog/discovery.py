"""Reading a backend's GET /v1/models answer: ids, capabilities, context windows.

Pure functions, no I/O or database (catalog.services does those). Backends
report differently, so this is the one place that knows the dialects:

- vLLM: `max_model_len` on each entry.
- llama.cpp: `meta.n_ctx` (the served context) and `meta.n_ctx_train`; its
  capabilities (`completion`, `multimodal`) sit in a parallel top-level
  `models` list keyed by name.
- OpenRouter-style gateways: `context_length`, `architecture.input_modalities`,
  `top_provider.max_completion_tokens`.
- LM Studio: `type` (`llm`, `vlm`, `embeddings`), `max_context_length`.
- Ollama's /v1/models reports ids only: the defaults apply.

Where nothing is reported, the id decides: `embed` means embeddings only,
`whisper` transcription only, anything else chat and completions. A report that
says no more than "completion" (llama.cpp says it of every model, embedding
GGUFs included) does not outvote an id that says embeddings or transcription.

An id becomes a name users type, a route's upstream name and text in pages, API
errors and SSE comment lines, so one that cannot be all of these safely (control
or invisible characters, edge whitespace, over 200 characters) is skipped, not
repaired: a trimmed or cut name would no longer be the one the backend serves.

Also here: what software a model list reveals (`owned_by`), and which models an
Ollama GET /api/ps answer holds in memory (catalog.loadstate uses both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Model.public_id and Deployment.upstream_model hold at most this many.
MODEL_ID_MAX_CHARS = 200

# Capability words seen in the wild, mapped onto the catalog's five.
_WORDS = {
    "chat": {"chat", "completions"},
    "completion": {"chat", "completions"},
    "completions": {"chat", "completions"},
    "generate": {"chat", "completions"},
    "text-generation": {"chat", "completions"},
    "tools": {"chat", "completions"},
    "llm": {"chat", "completions"},
    "vision": {"chat", "completions", "vision"},
    "multimodal": {"chat", "completions", "vision"},
    "image": {"chat", "completions", "vision"},
    "vlm": {"chat", "completions", "vision"},
    "embed": {"embeddings"},
    "embedding": {"embeddings"},
    "embeddings": {"embeddings"},
    "transcription": {"transcription"},
    "transcribe": {"transcription"},
    "speech-to-text": {"transcription"},
    "asr": {"transcription"},
}
_GENERIC = {"chat", "completions"}
# Most specific first: llama.cpp's n_ctx is what it serves, n_ctx_train only
# what the weights were trained for (often far more than the server allows).
_CONTEXT_PATHS = (
    ("max_model_len",),
    ("meta", "n_ctx"),
    ("loaded_context_length",),
    ("context_length",),
    ("context_window",),
    ("max_context_length",),
    ("max_input_tokens",),
    ("meta", "n_ctx_train"),
)
_OUTPUT_PATHS = (
    ("max_output_tokens",),
    ("max_completion_tokens",),
    ("top_provider", "max_completion_tokens"),
)


class ModelListInvalid(ValueError):
    """The answer is not an OpenAI model list."""


@dataclass(frozen=True)
class ReportedModel:
    id: str
    capabilities: frozenset[str]
    capabilities_reported: bool  # False: guessed from the id
    context_window: int | None
    max_output_tokens: int | None


@dataclass(frozen=True)
class ModelList:
    models: list[ReportedModel]
    # Ids listed but unusable, each shown safely (repr) with the reason.
    skipped: list[str] = field(default_factory=list)


def model_id_problem(model_id: str) -> str | None:
    """Why a listed id cannot be a catalog name, or None when it can."""
    if len(model_id) > MODEL_ID_MAX_CHARS:
        return f"longer than {MODEL_ID_MAX_CHARS} characters"
    if not model_id.isprintable():
        # Cc, Cf (zero-width, bidi overrides), separators other than a space.
        return "control or invisible characters"
    if model_id != model_id.strip():
        return "whitespace at an end"
    return None


def capabilities_from_id(model_id: str) -> frozenset[str]:
    lowered = model_id.lower()
    if "embed" in lowered:
        return frozenset({"embeddings"})
    if "whisper" in lowered:
        return frozenset({"transcription"})
    return frozenset({"chat", "completions"})


def model_list_parse(payload: Any) -> list[ReportedModel]:
    """Every usable entry of a /v1/models answer; raises ModelListInvalid."""
    return model_list_read(payload).models


def model_list_read(payload: Any) -> ModelList:
    """Every usable entry of a /v1/models answer, and the ids skipped as
    unusable; raises ModelListInvalid."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise ModelListInvalid("no `data` list")
    side_lists = _side_capabilities(payload.get("models"))
    reported: dict[str, ReportedModel] = {}
    skipped: list[str] = []
    for entry in payload["data"]:
        if not isinstance(entry, dict):
            continue
        model_id = entry.get("id")
        if not isinstance(model_id, str) or not model_id.strip():
            continue
        problem = model_id_problem(model_id)
        if problem is not None:
            skipped.append(f"{model_id[:60]!r} ({problem})")
            continue
        words = _words(entry) | side_lists.get(model_id, set())
        capabilities = _capabilities(words)
        from_id = capabilities_from_id(model_id)
        if capabilities == _GENERIC and "chat" not in from_id:
            capabilities = set()
        reported[model_id] = ReportedModel(
            id=model_id,
            capabilities=frozenset(capabilities or from_id),
            capabilities_reported=bool(capabilities),
            context_window=_first_int(entry, _CONTEXT_PATHS),
            max_output_tokens=_first_int(entry, _OUTPUT_PATHS),
        )
    return ModelList(models=list(reported.values()), skipped=skipped)


def _words(entry: dict[str, Any]) -> set[str]:
    words: set[str] = set()
    raw = entry.get("capabilities")
    if isinstance(raw, list):
        words |= {item.lower() for item in raw if isinstance(item, str)}
    elif isinstance(raw, dict):
        # {"chat": true, "embeddings": false}
        words |= {str(key).lower() for key, on in raw.items() if on is True}
    kind = entry.get("type")
    if isinstance(kind, str):
        words.add(kind.lower())
    if _has_image_input(entry):
        words.add("vision")
    return words


def _side_capabilities(models: Any) -> dict[str, set[str]]:
    """llama.cpp's parallel `models` list: {"model": id, "capabilities": [...]}."""
    found: dict[str, set[str]] = {}
    if not isinstance(models, list):
        return found
    for item in models:
        if not isinstance(item, dict) or not isinstance(item.get("capabilities"), list):
            continue
        words = {w.lower() for w in item["capabilities"] if isinstance(w, str)}
        for key in ("model", "name"):
            if isinstance(item.get(key), str):
                found.setdefault(item[key], set()).update(words)
    return found


def _capabilities(words: set[str]) -> set[str]:
    capabilities: set[str] = set()
    for word in words:
        capabilities |= _WORDS.get(word, set())
    return capabilities


def _has_image_input(entry: dict[str, Any]) -> bool:
    architecture = entry.get("architecture")
    if not isinstance(architecture, dict):
        return False
    modalities = architecture.get("input_modalities")
    return isinstance(modalities, list) and "image" in modalities


def _first_int(entry: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> int | None:
    for path in paths:
        value: Any = entry
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        # bool is an int to Python; a JSON `true` is not a token count.
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


# What a backend says it runs, as GET /v1/models' `owned_by` puts it: Ollama
# says "library" for its own models (or the namespace a model was pulled from).
_SOFTWARE_BY_OWNER = {
    "library": "ollama",
    "ollama": "ollama",
    "vllm": "vllm",
    "llamacpp": "llamacpp",
    "llama.cpp": "llamacpp",
    "sglang": "sglang",
}


def software_from_model_list(payload: Any) -> str:
    """The software a /v1/models answer reveals through `owned_by` (one of
    catalog.models.Backend.Software's values), or "" when it says nothing."""
    entries = payload.get("data") if isinstance(payload, dict) else None
    for entry in entries if isinstance(entries, list) else ():
        owner = entry.get("owned_by") if isinstance(entry, dict) else None
        if isinstance(owner, str) and owner.lower() in _SOFTWARE_BY_OWNER:
            return _SOFTWARE_BY_OWNER[owner.lower()]
    return ""


def loaded_names_parse(payload: Any) -> frozenset[str]:
    """The models an Ollama GET /api/ps answer holds in memory, by `name` and
    `model`, each without a `:latest` tag (see model_name_normalise)."""
    entries = payload.get("models") if isinstance(payload, dict) else None
    if not isinstance(entries, list):
        raise ModelListInvalid("no `models` list")
    names: set[str] = set()
    for entry in entries:
        for key in ("name", "model"):
            value = entry.get(key) if isinstance(entry, dict) else None
            if isinstance(value, str) and value:
                names.add(model_name_normalise(value))
    return frozenset(names)


def model_name_normalise(name: str) -> str:
    """Ollama calls "llama3" and "llama3:latest" the same model."""
    return name.removesuffix(":latest")
