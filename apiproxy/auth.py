"""Step 2, authenticate: the presented key through the one key gate (cached)."""

from __future__ import annotations

from accounts.keycache import key_principal_get
from accounts.keyformat import key_from_asgi_headers
from accounts.selectors import KeyPrincipal
from apiproxy.errors import ProxyError
from apiproxy.http import Headers


def _unauthorized(message: str) -> ProxyError:
    return ProxyError(
        401,
        message,
        code="invalid_api_key",
        headers=[(b"www-authenticate", b'Bearer realm="portico"')],
    )


async def principal_authenticate(headers: Headers) -> KeyPrincipal:
    raw_key = key_from_asgi_headers(headers)
    if raw_key is None:
        raise _unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer "
            "sk-...' (or 'x-api-key'). Create one in Settings > Account."
        )
    principal = await key_principal_get(raw_key)
    if principal is None:
        raise _unauthorized(
            "Incorrect API key provided. Check it in Settings > Account; it may "
            "have been revoked or have expired."
        )
    return principal
