"""TOTP codes as an authenticator app makes them (RFC 6238: HMAC-SHA1, 30 s
steps, 6 digits), written out here rather than borrowed from allauth so the
tests check allauth's side against the standard."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time


def totp_code(secret: str, *, at: float | None = None, digits: int = 6) -> str:
    key = base64.b32decode(secret.upper(), casefold=True)
    step = int((time.time() if at is None else at) // 30)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**digits).zfill(digits)
