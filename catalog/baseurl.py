"""Backend base URLs, written the way users write them for the OpenAI SDK."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ValidationError


def base_url_normalise(raw: str) -> str:
    """`http://gpu01:8000/v1` as stored: http(s), no trailing slash, no secrets.

    A bare host (`http://gpu01:8000`) gets `/v1` appended, the usual slip; any
    other path is kept as written, because some OpenAI-compatible servers live
    elsewhere (`https://host/api/v1`, `.../v1beta/openai`). Credentials in the
    URL are refused: they would show in admin and logs, the API key field is
    encrypted instead.
    """
    value = raw.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        raise ValidationError(f"{value!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            "The base URL needs http:// or https:// and a host, "
            "e.g. http://gpu01:8000/v1"
        )
    if parts.username or parts.password:
        raise ValidationError(
            "Put credentials in the API key field, not in the base URL"
        )
    if parts.query or parts.fragment:
        raise ValidationError("The base URL cannot have a query or a fragment")
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def base_url_validate(raw: str) -> None:
    """Model field validator: the stored value must already be normalised."""
    if base_url_normalise(raw) != raw:
        raise ValidationError(
            f"Write the base URL as {base_url_normalise(raw)!r}", code="normalise"
        )
