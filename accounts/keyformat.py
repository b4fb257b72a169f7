"""The API key format, and how a key is read out of request headers.

A key reads `sk-<site tag>_<lookup id><secret><checksum>`, for example
`sk-ptc_` + 10 + 32 + 6 base62 characters:

- the site tag lets secret scanners and people tell Portico keys apart;
- the lookup id (about 59 bits) finds the row by a unique index;
- the secret (32 base62 characters, about 190 bits) is what makes the key;
- the checksum (CRC32 of everything before it, 6 base62 characters) lets a typo
  or a random string be refused without touching the database.

The checksum is unkeyed on purpose (as in GitHub's tokens): anyone can compute
it, so whether a string passes it is public knowledge, and refusing a string
that fails it faster than an unknown key leaks nothing. It is not a MAC.

Only the lookup id and the SHA-256 digest of the whole key are stored. Nothing
here logs, and nothing here raises on any input: header values are untrusted
bytes of any length.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
LOOKUP_ID_LENGTH = 10
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
SITE_TAG_PATTERN = r"[a-z0-9]{1,16}"
# Longest well-formed key: sk- + 16 + _ + 48. Anything longer is refused before
# any regular expression or hash sees it.
MAX_KEY_LENGTH = 3 + 16 + 1 + LOOKUP_ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH

_KEY_RE = re.compile(
    rf"sk-(?P<tag>{SITE_TAG_PATTERN})_"
    rf"(?P<lookup>[0-9A-Za-z]{{{LOOKUP_ID_LENGTH}}})"
    rf"[0-9A-Za-z]{{{SECRET_LENGTH}}}"
    rf"(?P<checksum>[0-9A-Za-z]{{{CHECKSUM_LENGTH}}})",
    re.ASCII,
)
# The same shape anywhere inside a text, checksum not checked: a key pasted into
# a name or a model list is refused rather than stored.
_KEY_INSIDE_RE = re.compile(
    rf"sk-{SITE_TAG_PATTERN}_[0-9A-Za-z]{{{LOOKUP_ID_LENGTH + SECRET_LENGTH}}}",
    re.ASCII,
)
_SITE_TAG_RE = re.compile(SITE_TAG_PATTERN, re.ASCII)
_LOOKUP_ID_RE = re.compile(rf"[0-9A-Za-z]{{{LOOKUP_ID_LENGTH}}}", re.ASCII)
# What the digest compare runs against when there is no row to compare with, so
# that the refusal of a malformed or unknown key still does the same work.
_DUMMY_DIGEST = hashlib.sha256(b"portico dummy key").hexdigest()


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    raw: str
    lookup_id: str
    digest: str
    prefix: str
    last4: str

    def __repr__(self) -> str:  # never let the raw key reach a log via repr()
        return f"GeneratedKey(lookup_id={self.lookup_id!r}, prefix={self.prefix!r})"


@dataclass(frozen=True, slots=True)
class ParsedKey:
    raw: str
    site_tag: str
    lookup_id: str

    def __repr__(self) -> str:
        return f"ParsedKey(lookup_id={self.lookup_id!r})"

    @property
    def display(self) -> str:
        return key_display(prefix=f"sk-{self.site_tag}_", last4=self.raw[-4:])


def _base62_random(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def _base62_fixed(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, rest = divmod(number, 62)
        chars.append(BASE62[rest])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    # 62**6 > 2**32, so every CRC32 value has its own 6-character form.
    return _base62_fixed(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def site_tag_is_valid(tag: str) -> bool:
    return _SITE_TAG_RE.fullmatch(tag) is not None


def lookup_id_is_valid(value: str) -> bool:
    return _LOOKUP_ID_RE.fullmatch(value) is not None


def key_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def digest_matches(*, digest: str, stored: str) -> bool:
    """Constant-time comparison of two hex digests."""
    return hmac.compare_digest(digest.encode("ascii"), stored.encode("ascii"))


def dummy_digest_compare(raw: str) -> None:
    """The work a real refusal does (hash and compare), with nothing to compare to."""
    digest_matches(digest=key_digest(raw[:MAX_KEY_LENGTH]), stored=_DUMMY_DIGEST)


def key_display(*, prefix: str, last4: str) -> str:
    """What pages and logs may show: `sk-ptc_…abcd`."""
    return f"{prefix}\u2026{last4}"


def key_generate(*, site_tag: str) -> GeneratedKey:
    if not site_tag_is_valid(site_tag):
        raise ValueError(f"invalid API key site tag {site_tag!r}")
    prefix = f"sk-{site_tag}_"
    lookup_id = _base62_random(LOOKUP_ID_LENGTH)
    body = prefix + lookup_id + _base62_random(SECRET_LENGTH)
    raw = body + _checksum(body)
    return GeneratedKey(
        raw=raw,
        lookup_id=lookup_id,
        digest=key_digest(raw),
        prefix=prefix,
        last4=raw[-4:],
    )


def key_parse(raw: object) -> ParsedKey | None:
    """A well-formed key with a valid checksum, else None. No I/O, never raises."""
    if not isinstance(raw, str) or len(raw) > MAX_KEY_LENGTH:
        return None
    match = _KEY_RE.fullmatch(raw)
    if match is None:
        return None
    checksum_start = len(raw) - CHECKSUM_LENGTH
    if not hmac.compare_digest(_checksum(raw[:checksum_start]), raw[checksum_start:]):
        return None
    return ParsedKey(raw=raw, site_tag=match["tag"], lookup_id=match["lookup"])


def key_safe_display(raw: object) -> str | None:
    """The display form of a presented string that has a key's shape (checksum
    right or not), for error messages; None for anything else, so that no
    arbitrary client bytes are echoed back."""
    if not isinstance(raw, str) or len(raw) > MAX_KEY_LENGTH:
        return None
    match = _KEY_RE.fullmatch(raw)
    if match is None:
        return None
    return key_display(prefix=f"sk-{match['tag']}_", last4=raw[-4:])


def text_holds_key(text: str) -> bool:
    """Whether a key (or something shaped like one) is pasted inside `text`."""
    return _KEY_INSIDE_RE.search(text) is not None


# --- Reading a key out of headers -------------------------------------------
#
# Every door (the proxy's ASGI app, Django views) decides the same way:
# - neither header: None (no key presented);
# - `Authorization: Bearer <key>` (scheme in any case, any run of spaces or
#   tabs) or `x-api-key: <key>`: the key, surrounding whitespace stripped;
# - both headers carrying the same key: that key;
# - anything else that was presented (another scheme, an empty token, two
#   different keys): "" — a presented but unusable key, which every gate refuses
#   like a malformed one.

_WHITESPACE = " \t"


def _bearer_token(value: str) -> str:
    value = value.strip(_WHITESPACE)
    scheme, _, token = value.partition(" ")
    if "\t" in scheme:  # "Bearer\t<key>"
        scheme, _, rest = scheme.partition("\t")
        token = rest + (" " + token if token else "")
    if scheme.lower() != "bearer":
        return ""
    return token.strip(_WHITESPACE)


def key_from_headers(*, authorization: str | None, x_api_key: str | None) -> str | None:
    """The key presented in `Authorization: Bearer` or `x-api-key` (see above)."""
    candidates = []
    if authorization is not None:
        candidates.append(_bearer_token(authorization))
    if x_api_key is not None:
        candidates.append(x_api_key.strip(_WHITESPACE))
    if not candidates:
        return None
    first = candidates[0]
    if any(other != first for other in candidates[1:]):
        return ""
    return first


def key_from_asgi_headers(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """`key_from_headers` for an ASGI scope's raw `headers` list.

    Repeated headers that disagree make the presented key unusable ("").
    """
    authorization: set[str] = set()
    x_api_key: set[str] = set()
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"authorization":
            authorization.add(_bearer_token(value.decode("latin-1")))
        elif lowered == b"x-api-key":
            x_api_key.add(value.decode("latin-1").strip(_WHITESPACE))
    found = authorization | x_api_key
    if not found:
        return None
    if len(found) > 1:
        return ""
    return found.pop()


def key_from_request(request: object) -> str | None:
    """`key_from_headers` for a Django request."""
    headers = getattr(request, "headers", {})
    return key_from_headers(
        authorization=headers.get("Authorization"), x_api_key=headers.get("X-Api-Key")
    )
