"""Where a request names media by URL, found during the parse step.

Content parts of chat messages (image_url, video_url, audio_url,
file.file_url) and the Responses API's input items (input_image.image_url,
input_file.file_url) may carry a URL. vLLM and others fetch such URLs
themselves, from the GPU hosts: server-side request forgery. So a backend only
ever gets inline data: URLs. A remote URL is checked here for what needs no
network (scheme, userinfo, host form), remembered as a MediaRef, and fetched
by Portico under its own address rules once the request is admitted
(apiproxy.mediafetch), which writes a data: URL in its place.

Sync and linear in the body: part of the parse step, which may run in a
worker thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from yarl import URL

from apiproxy.errors import invalid_request
from apiproxy.mediaaddress import url_refusal

_URL_FIELDS = frozenset({"url", "image_url", "video_url", "audio_url", "file_url"})
# The kind of media a field holds: from its key, or for "url" from the key of
# the object holding it (image_url: {url: ...}). The kind decides which
# content types a fetched file may have.
_FIELD_KINDS = {
    "image_url": "image",
    "video_url": "video",
    "audio_url": "audio",
    "file_url": "file",
}


# What a fetched file of each kind may be. Files: documents a model can read.
_FILE_TYPES = frozenset(
    {
        "application/pdf",
        "application/json",
        "application/xml",
        "application/rtf",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
    }
)
_FILE_PREFIXES = (
    "text/",
    "application/vnd.openxmlformats-officedocument.",
    "application/vnd.oasis.opendocument.",
)
_WANTED = {
    "image": "an image (image/*)",
    "video": "a video (video/*)",
    "audio": "audio (audio/*)",
    "file": "a document (application/pdf, text/*, JSON, XML or office formats)",
}
# The Accept header a fetch of each kind sends.
KIND_ACCEPT = {
    "image": "image/*",
    "video": "video/*",
    "audio": "audio/*",
    "file": "application/pdf, text/*, application/json, application/xml, */*;q=0.1",
}
_MEDIA_TYPE = re.compile(
    r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
)


@dataclass
class MediaRef:
    """A remote media URL in the body: the object holding it and its key (so
    that its data: URL can be written in its place), its parameter path."""

    holder: dict[str, Any]
    key: str
    param: str
    kind: str  # image, video, audio or file
    url: str


def media_urls_check(value: Any, where: str) -> list[MediaRef]:
    """The remote media URLs in `value` (a message list or a Responses
    input), in document order. Refuses any URL field that holds neither an
    inline data: URL nor a URL Portico may fetch. Walks each container once."""
    found: list[MediaRef] = []
    # A container with its path and the key it is under, or a URL field with
    # its path, key, holder and kind.
    pending: list[tuple[Any, str, str, dict[str, Any] | None, str | None]] = [
        (value, where, "", None, None)
    ]
    while pending:
        item, path, name, holder, kind = pending.pop()
        if holder is not None:
            if _media_url_check(item, path, kind):
                found.append(MediaRef(holder, name, path, kind or "", item))
        elif isinstance(item, list):
            pending.extend(
                (item[i], f"{path}[{i}]", name, None, None)
                for i in range(len(item) - 1, -1, -1)
            )
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                if key in _URL_FIELDS and isinstance(child, str):
                    field_kind = _FIELD_KINDS.get(name if key == "url" else key)
                    pending.append((child, f"{path}.{key}", key, item, field_kind))
                elif isinstance(child, dict | list):
                    pending.append((child, f"{path}.{key}", key, None, None))
    return found


def _media_url_check(url: str, where: str, kind: str | None) -> bool:
    """False for an inline data: URL, True for a URL Portico will fetch;
    raises the 400 for anything else."""
    if url[:5].lower() == "data:":
        return False
    if not settings.MEDIA_FETCH:
        raise invalid_request(
            f"'{where}' must be an inline data URL. Remote URLs are not fetched by "
            "this portal (backends must not reach the network on your behalf): send "
            "the file inline as base64, e.g. data:image/png;base64,...",
            param=where,
        )
    if kind is None:
        raise invalid_request(
            f"'{where}' must be an inline data URL: Portico fetches the URLs of "
            "image, video, audio and file parts only.",
            param=where,
        )
    try:
        refusal = url_refusal(URL(url))
    except ValueError:
        refusal = "it is not a valid URL"
    if refusal is not None:
        raise invalid_request(
            f"'{where}' cannot be fetched: {refusal}. Use a public http(s) URL "
            "or send the file inline as a data URL.",
            param=where,
        )
    return True


def media_collect(endpoint: str, body: dict[str, Any]) -> list[MediaRef]:
    """The remote media URLs of a validated request body, at most
    MEDIA_FETCH_MAX_URLS of them (a 400 beyond)."""
    if endpoint == "chat/completions":
        found = media_urls_check(body["messages"], "messages")
    elif endpoint == "responses":
        found = media_urls_check(body["input"], "input")
    else:
        return []
    limit = settings.MEDIA_FETCH_MAX_URLS
    if len(found) > limit:
        extra = found[limit].param
        raise invalid_request(
            f"A request may name at most {limit} remote media URLs; '{extra}' is "
            "one too many. Send the rest inline as data URLs, or split the request.",
            param=extra,
        )
    return found


def media_type_of(header: str) -> str:
    """The media type of a Content-Type header, lower-cased, no parameters."""
    return header.split(";")[0].strip().lower()


def content_type_refusal(kind: str, media_type: str) -> str | None:
    """Why a fetched file of `kind` may not be of `media_type` (the caller
    is told what was got), or None if it may."""
    readable = _MEDIA_TYPE.fullmatch(media_type) is not None
    if readable:
        if kind == "file":
            if media_type in _FILE_TYPES or media_type.startswith(_FILE_PREFIXES):
                return None
        elif media_type.startswith(f"{kind}/"):
            return None
    # Shown only if it is a plain media type, never a host's raw text.
    shown = media_type if readable else "unreadable" if media_type else "none"
    return (
        f"the media host sent content type '{shown}' where {_WANTED[kind]} was expected"
    )
