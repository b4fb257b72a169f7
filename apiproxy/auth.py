"""Step 1, authenticate (before any body is read): the presented key through
the one key gate (cached)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError

from accounts.keycache import KeySignInRequired, KeyThrottled, key_principal_get
from accounts.keyformat import key_from_asgi_headers
from accounts.selectors import Principal
from apiproxy.errors import ProxyError
from apiproxy.http import Headers

logger = logging.getLogger(__name__)


def _unauthorized(message: str, code: str = "invalid_api_key") -> ProxyError:
    return ProxyError(
        401,
        message,
        code=code,
        headers=[(b"www-authenticate", b'Bearer realm="portico"')],
    )


def sign_in_required_message() -> str:
    where = f" at {settings.SITE_URL}/accounts/login/" if settings.SITE_URL else ""
    return (
        "This API key is paused: you have not signed in to Portico through "
        f"your institution in the last {settings.SSO_REVALIDATE_DAYS} days. "
        f"Sign in once in the browser{where} and the key works again."
    )


async def principal_authenticate(headers: Headers, *, client: str = "") -> Principal:
    """The principal of the presented key. `client` is the caller's address:
    one that keeps presenting refused keys is slowed down (429) before each
    miss would cost a database look-up."""
    raw_key = key_from_asgi_headers(headers)
    if raw_key is None:
        raise _unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer "
            "sk-...' (or 'x-api-key'). Create one in Settings > Account."
        )
    try:
        principal = await key_principal_get(raw_key, client=client)
    except KeySignInRequired:
        raise _unauthorized(sign_in_required_message(), "sign_in_required") from None
    except KeyThrottled:
        raise ProxyError(
            429,
            "Too many requests with invalid API keys from your address. Check "
            "your key in Settings > Account and try again in a minute.",
            type="requests",
            code="too_many_invalid_keys",
            headers=[(b"retry-after", b"60")],
        ) from None
    except DatabaseError:
        # A cache miss while the database is away: say so, rather than
        # calling a good key invalid (a 401 would make clients give up).
        logger.warning("key check failed: database unavailable")
        raise ProxyError(
            503,
            "Portico cannot check API keys right now. Retry shortly.",
            type="server_error",
            code="auth_unavailable",
            headers=[(b"retry-after", b"5")],
        ) from None
    if principal is None:
        raise _unauthorized(
            "Incorrect API key provided. Check it in Settings > Account; it may "
            "have been revoked or have expired."
        )
    return principal
