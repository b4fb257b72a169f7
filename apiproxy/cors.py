"""CORS for the API door, as OpenAI's API answers it: browser-based clients
(notebooks, web tools, the openai JS SDK with dangerouslyAllowBrowser) call
Portico from their own origin with a key.

Keys travel in the Authorization header, never in cookies, so no response
allows credentials: a page elsewhere can use a key it was given, but never
the signed-in user's session. The browser door (apiproxy.browser) is
same-origin and gets none of this.

The header tuples are built once per value of settings.API_CORS_ORIGINS;
per request it costs one header look-up (Origin) and a set membership.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from django.conf import settings

from apiproxy.http import Headers, Send, header_get

EXPOSED = (
    b"x-request-id, x-ratelimit-limit-requests, x-ratelimit-limit-tokens, "
    b"x-ratelimit-remaining-requests, x-ratelimit-remaining-tokens, "
    b"x-ratelimit-reset-requests, x-ratelimit-reset-tokens, retry-after, "
    b"x-should-retry"
)
# Sent when a preflight's requested headers are not a plain token list: what
# the openai JS SDK (and fetch with a Bearer key) sends.
ALLOWED_HEADERS = (
    b"authorization, content-type, x-api-key, openai-organization, "
    b"openai-project, openai-beta, x-stainless-arch, x-stainless-lang, "
    b"x-stainless-os, x-stainless-package-version, x-stainless-retry-count, "
    b"x-stainless-runtime, x-stainless-runtime-version, x-stainless-timeout, "
    b"x-stainless-helper-method, x-stainless-poll-helper"
)
ALLOWED_METHODS = b"GET, POST, OPTIONS"
# Chromium caps a preflight's cache at two hours.
MAX_AGE = b"7200"
_HEADER_LIST = re.compile(
    rb"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(?:[ \t]*,[ \t]*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$"
)


@dataclass(frozen=True)
class CorsPolicy:
    """Which origins may read API answers: all (`any_origin`), the listed
    ones, or none (`enabled` false)."""

    enabled: bool
    any_origin: bool = False
    origins: frozenset[bytes] = frozenset()
    _any_headers: Headers = field(default_factory=list)

    def response_headers(self, origin: bytes | None) -> Headers:
        """Headers for an answer to a request from `origin` (None: not a
        browser's cross-origin request): empty unless the origin may read it."""
        if origin is None or not self.enabled:
            return []
        if self.any_origin:
            return list(self._any_headers)
        if origin in self.origins:
            return [
                (b"access-control-allow-origin", origin),
                (b"vary", b"Origin"),
                (b"access-control-expose-headers", EXPOSED),
            ]
        return []

    def preflight_headers(self, origin: bytes, requested: bytes | None) -> Headers:
        allowed = self.response_headers(origin)
        if not allowed:
            return []
        if requested and len(requested) <= 2000 and _HEADER_LIST.match(requested):
            allow_headers = requested
        else:
            allow_headers = ALLOWED_HEADERS
        return [
            *allowed[:1],
            (b"access-control-allow-methods", ALLOWED_METHODS),
            (b"access-control-allow-headers", allow_headers),
            (b"access-control-max-age", MAX_AGE),
            (b"vary", b"Origin, Access-Control-Request-Headers"),
        ]


@lru_cache(maxsize=4)
def policy_build(origins: tuple[str, ...]) -> CorsPolicy:
    """The policy for a value of API_CORS_ORIGINS, built once per value."""
    if not origins:
        return CorsPolicy(enabled=False)
    if "*" in origins:
        return CorsPolicy(
            enabled=True,
            any_origin=True,
            _any_headers=[
                (b"access-control-allow-origin", b"*"),
                (b"access-control-expose-headers", EXPOSED),
            ],
        )
    return CorsPolicy(
        enabled=True,
        origins=frozenset(origin.rstrip("/").encode() for origin in origins),
    )


def cors_policy() -> CorsPolicy:
    return policy_build(tuple(settings.API_CORS_ORIGINS))


def is_preflight(method: str, headers: Headers) -> bool:
    return method == "OPTIONS" and (
        header_get(headers, b"access-control-request-method") is not None
    )


async def preflight_answer(send: Send, policy: CorsPolicy, headers: Headers) -> None:
    """204 to a preflight from an allowed origin; 403 without CORS headers
    (the browser then refuses the request) from any other."""
    origin = header_get(headers, b"origin") or b""
    allowed = policy.preflight_headers(
        origin, header_get(headers, b"access-control-request-headers")
    )
    await send(
        {
            "type": "http.response.start",
            "status": 204 if allowed else 403,
            "headers": [(b"content-length", b"0"), *allowed],
        }
    )
    await send({"type": "http.response.body", "body": b""})
