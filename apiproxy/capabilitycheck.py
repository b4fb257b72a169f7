"""Refuse, before any backend sees it, a request that uses something the
model is marked as lacking (catalog.models: tools, JSON schema, vision, audio
input). A backend asked anyway answers with a vague 400 or 500, or quietly
ignores the tools or the image and answers something else; a 400 naming the
parameter tells the caller what to change.

Only what a model lacks is looked for, so a model that has every capability
costs a few set lookups per request.
"""

from __future__ import annotations

from typing import Any

from apiproxy.errors import ProxyError
from apiproxy.parsing import ParsedRequest
from catalog.snapshot import CatalogModel

# Content part types, per the capability they need. Chat parts first, then
# the Responses API's input items.
_PART_NEEDS = {
    "image_url": "vision",
    "video_url": "vision",
    "input_image": "vision",
    "input_audio": "audio",
    "audio_url": "audio",
}
_CAPABILITY_WORDS = {
    "tools": "tools (function calling)",
    "json_schema": "structured output (response_format json_schema)",
    "vision": "images or video",
    "audio": "audio input",
}


def unsupported_parameter(model: str, param: str, capability: str) -> ProxyError:
    return ProxyError(
        400,
        f"The model '{model}' does not support {_CAPABILITY_WORDS[capability]}, "
        f"which '{param}' asks for. GET /v1/models lists each model's "
        "capabilities; choose one that has it, or leave the parameter out.",
        code="unsupported_parameter",
        param=param,
    )


def capabilities_check(parsed: ParsedRequest, model: CatalogModel) -> None:
    """Raise the 400 for the first thing the request uses that the model
    lacks; return quietly otherwise."""
    lacking = _LACKABLE - model.capabilities
    if not lacking or parsed.endpoint not in ("chat/completions", "responses"):
        return
    body = parsed.body
    if "tools" in lacking:
        for name in ("tools", "functions"):
            if body.get(name):
                raise unsupported_parameter(parsed.model, name, "tools")
    if "json_schema" in lacking:
        param = _json_schema_param(body)
        if param:
            raise unsupported_parameter(parsed.model, param, "json_schema")
    media = lacking & {"vision", "audio"}
    if media:
        found = _media_part(parsed, media)
        if found:
            raise unsupported_parameter(parsed.model, *found)


_LACKABLE = frozenset(_CAPABILITY_WORDS)


def _json_schema_param(body: dict[str, Any]) -> str | None:
    response_format = body.get("response_format")
    if (
        isinstance(response_format, dict)
        and response_format.get("type") == "json_schema"
    ):
        return "response_format"
    text = body.get("text")
    if isinstance(text, dict):
        text_format = text.get("format")
        if isinstance(text_format, dict) and text_format.get("type") == "json_schema":
            return "text.format"
    return None


def _media_part(parsed: ParsedRequest, lacking: set[str]) -> tuple[str, str] | None:
    """(param path, capability) of the first content part needing one of
    `lacking`."""
    if parsed.endpoint == "chat/completions":
        items, where = parsed.body.get("messages"), "messages"
    else:
        items, where = parsed.body.get("input"), "input"
    if not isinstance(items, list):
        return None
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        content = item.get("content")
        if isinstance(content, list):
            for part_index, part in enumerate(content):
                need = _need(part)
                if need in lacking:
                    return f"{where}[{index}].content[{part_index}]", need
        elif _need(item) in lacking:
            return f"{where}[{index}]", _need(item)  # type: ignore[return-value]
    return None


def _need(part: Any) -> str | None:
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    return _PART_NEEDS.get(kind) if isinstance(kind, str) else None
