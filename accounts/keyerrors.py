"""The 401 every door answers for a missing or unusable key, in OpenAI's shape.

`{"error": {"message", "type": "invalid_request_error", "param": null,
"code": "invalid_api_key"}}`. The message echoes at most the display form
(`sk-ptc_…abcd`) of a string shaped like a key, never the key itself nor any
other client bytes. Unknown, malformed, revoked and expired keys, and keys of
inactive users, all get the same message: telling them apart would help only
someone probing keys that are not theirs.
"""

from __future__ import annotations

import json

from accounts.keyformat import key_safe_display

INVALID_KEY_STATUS = 401

MISSING_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an "
    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), "
    "or in an x-api-key header. You can create a key under Settings > Account."
)


def invalid_key_message(*, presented: str | None) -> str:
    if presented is None:
        return MISSING_KEY_MESSAGE
    shown = key_safe_display(presented)
    provided = (
        f"Incorrect API key provided: {shown}."
        if shown
        else ("Incorrect API key provided.")
    )
    return f"{provided} You can find your API keys under Settings > Account."


def invalid_key_error(*, presented: str | None) -> dict[str, dict[str, str | None]]:
    """The error object for a refused key; `presented` is what the client sent
    (None when it sent no key at all)."""
    return {
        "error": {
            "message": invalid_key_message(presented=presented),
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }


def invalid_key_error_body(*, presented: str | None) -> bytes:
    """`invalid_key_error` as the JSON bytes of a 401 response body."""
    return json.dumps(invalid_key_error(presented=presented)).encode()
