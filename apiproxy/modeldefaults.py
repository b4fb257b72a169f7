"""What a model's operators set for every request: default parameters and a
system prompt prefix (catalog.models.Model). An alias such as
`qwen3.5-122b-nonthinking` is its target's deployments plus
`{"chat_template_kwargs": {"enable_thinking": false}}`.

The request wins over the defaults, key by key and down into nested objects,
so a caller who sets `chat_template_kwargs: {"foo": 1}` keeps the alias's
`enable_thinking: false` beside it, and one who sets a temperature keeps it.
Applied once, after admission and before the first route is tried, to the
parsed body the relay serialises; nothing is copied per chunk.
"""

from __future__ import annotations

from typing import Any

from apiproxy.parsing import ParsedRequest
from catalog.snapshot import CatalogModel

# Defaults never decide these: they are the caller's or the proxy's.
_NOT_DEFAULTABLE = frozenset({"model", "messages", "prompt", "input", "stream"})


def defaults_merge(defaults: dict[str, Any], request: dict[str, Any]) -> None:
    """Fill `request` in place with what `defaults` has and it lacks."""
    for name, value in defaults.items():
        if name in _NOT_DEFAULTABLE:
            continue
        mine = request.get(name)
        if name not in request or mine is None:
            request[name] = _copied(value)
        elif isinstance(mine, dict) and isinstance(value, dict):
            defaults_merge(value, mine)


def _copied(value: Any) -> Any:
    """A fresh copy of a JSON value: the snapshot's dicts are shared."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    return value


def model_defaults_apply(parsed: ParsedRequest, model: CatalogModel) -> None:
    """Merge the model's default parameters and system prompt prefix into the
    request (chat and Responses requests take the prefix; the others have no
    system prompt to put it in)."""
    if model.default_params:
        defaults_merge(model.default_params, parsed.body)
    prefix = model.system_prompt_prefix
    if not prefix:
        return
    if parsed.endpoint == "chat/completions":
        _system_prefix(parsed.body["messages"], prefix)
    elif parsed.endpoint == "responses":
        instructions = parsed.body.get("instructions")
        parsed.body["instructions"] = (
            f"{prefix}\n\n{instructions}" if isinstance(instructions, str) else prefix
        )


def _system_prefix(messages: list[Any], prefix: str) -> None:
    first = messages[0] if messages else None
    if (
        isinstance(first, dict)
        and first.get("role") in ("system", "developer")
        and isinstance(first.get("content"), str)
    ):
        messages[0] = {**first, "content": f"{prefix}\n\n{first['content']}"}
    else:
        messages.insert(0, {"role": "system", "content": prefix})
