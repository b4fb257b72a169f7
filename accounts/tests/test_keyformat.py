"""The key format and header parsing: pure functions, fuzzed, never raising."""

from __future__ import annotations

import json
import random

import pytest

from accounts.keyerrors import invalid_key_error, invalid_key_error_body
from accounts.keyformat import (
    BASE62,
    key_digest,
    key_from_asgi_headers,
    key_from_headers,
    key_generate,
    key_parse,
    key_safe_display,
)


def _typo(raw: str, position: int) -> str:
    char = raw[position]
    replacement = BASE62[(BASE62.index(char) + 1) % 62]
    return raw[:position] + replacement + raw[position + 1 :]


def test_a_key_has_the_tag_a_lookup_id_128_plus_bits_and_a_checksum() -> None:
    generated = key_generate(site_tag="ptc")
    assert generated.raw.startswith("sk-ptc_")
    body = generated.raw.removeprefix("sk-ptc_")
    assert len(body) == 10 + 32 + 6 and set(body) <= set(BASE62)
    assert body[:10] == generated.lookup_id
    assert 32 * 5.95 >= 128  # 32 base62 characters carry about 190 bits
    assert generated.digest == key_digest(generated.raw)
    assert len(generated.digest) == 64
    parsed = key_parse(generated.raw)
    assert parsed is not None and parsed.lookup_id == generated.lookup_id


def test_keys_are_random() -> None:
    raws = {key_generate(site_tag="ptc").raw for _ in range(200)}
    assert len(raws) == 200


def test_repr_never_shows_the_raw_key() -> None:
    generated = key_generate(site_tag="ptc")
    parsed = key_parse(generated.raw)
    assert generated.raw not in repr(generated)
    assert generated.raw not in repr(parsed)


@pytest.mark.parametrize("position", [3, 7, 12, 20, 40, 50, 54])
def test_the_checksum_catches_any_single_typo(position: int) -> None:
    raw = key_generate(site_tag="ptc").raw
    if position == 3:  # in the tag: a different (valid-looking) tag
        broken = raw[:3] + "x" + raw[4:]
    else:
        broken = _typo(raw, position)
    assert key_parse(broken) is None


def test_a_key_from_another_site_tag_still_parses() -> None:
    raw = key_generate(site_tag="uni42").raw
    parsed = key_parse(raw)
    assert parsed is not None and parsed.site_tag == "uni42"


def test_display_shows_only_the_prefix_and_last_four() -> None:
    raw = key_generate(site_tag="ptc").raw
    assert key_safe_display(raw) == f"sk-ptc_\u2026{raw[-4:]}"
    assert key_safe_display("hello") is None
    assert key_safe_display("sk-ptc_<script>") is None


@pytest.mark.parametrize(
    "value",
    [None, 12, b"sk-ptc_", "", " ", "sk-", "sk-ptc_", "x" * 10_000_000, "\x00" * 60],
)
def test_parse_refuses_junk_without_raising(value: object) -> None:
    assert key_parse(value) is None


# --- Header parsing -------------------------------------------------------------


@pytest.fixture(scope="module")
def raw() -> str:
    return key_generate(site_tag="ptc").raw


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer {k}",
        "bearer {k}",
        "BEARER {k}",
        "Bearer    {k}",
        "Bearer\t{k}",
        "  Bearer {k}  ",
        "Bearer \t {k}\t",
    ],
)
def test_bearer_in_any_case_and_spacing_is_accepted(
    raw: str, authorization: str
) -> None:
    value = authorization.format(k=raw)
    assert key_from_headers(authorization=value, x_api_key=None) == raw
    assert key_from_asgi_headers([(b"authorization", value.encode())]) == raw


def test_x_api_key_and_bearer_decide_identically(raw: str) -> None:
    for value in [raw, f"  {raw} ", "nonsense", "", raw + "x"]:
        via_bearer = key_from_headers(authorization=f"Bearer {value}", x_api_key=None)
        via_header = key_from_headers(authorization=None, x_api_key=value)
        assert via_bearer == via_header
        assert key_from_asgi_headers([(b"x-api-key", value.encode())]) == via_header


def test_no_header_means_no_key_presented() -> None:
    assert key_from_headers(authorization=None, x_api_key=None) is None
    assert key_from_asgi_headers([(b"content-type", b"application/json")]) is None


@pytest.mark.parametrize(
    ("authorization", "x_api_key"),
    [
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("{k}", None),  # no scheme
        ("Bearer {k}", "{k}x"),  # two different keys
        ("Token {k}", "{k}"),
    ],
)
def test_unusable_presentations_are_an_empty_key(
    raw: str, authorization: str | None, x_api_key: str | None
) -> None:
    auth = authorization.format(k=raw) if authorization else None
    api = x_api_key.format(k=raw) if x_api_key else None
    assert key_from_headers(authorization=auth, x_api_key=api) == ""
    headers = []
    if auth is not None:
        headers.append((b"authorization", auth.encode()))
    if api is not None:
        headers.append((b"x-api-key", api.encode()))
    assert key_from_asgi_headers(headers) == ""


def test_the_same_key_in_both_headers_is_fine(raw: str) -> None:
    assert key_from_headers(authorization=f"Bearer {raw}", x_api_key=raw) == raw
    assert (
        key_from_asgi_headers(
            [(b"Authorization", f"Bearer {raw}".encode()), (b"X-API-Key", raw.encode())]
        )
        == raw
    )


def test_repeated_headers_that_disagree_are_unusable(raw: str) -> None:
    other = key_generate(site_tag="ptc").raw
    headers = [
        (b"authorization", f"Bearer {raw}".encode()),
        (b"authorization", f"Bearer {other}".encode()),
    ]
    assert key_from_asgi_headers(headers) == ""


def _fuzz_values(rng: random.Random, raw: str) -> list[bytes]:
    values: list[bytes] = []
    for _ in range(3000):
        kind = rng.randrange(7)
        if kind == 0:
            values.append(rng.randbytes(rng.randrange(0, 200)))
        elif kind == 1:
            chars = "".join(chr(rng.randrange(0, 0x110000)) for _ in range(40))
            values.append(chars.encode("utf-8", "surrogatepass"))
        elif kind == 2:
            values.append(("Bearer " + " " * rng.randrange(50) + raw).encode())
        elif kind == 3:  # a key with bytes flipped
            broken = bytearray(f"Bearer {raw}".encode())
            broken[rng.randrange(len(broken))] = rng.randrange(256)
            values.append(bytes(broken))
        elif kind == 4:
            values.append(b"Bearer " + b"A" * rng.choice([55, 56, 1000, 100_000]))
        elif kind == 5:
            values.append(bytes(rng.choice(b" \t\r\n\x00\xff,;=") for _ in range(30)))
        else:
            values.append(rng.choice([b"bEaReR", b"Bearer\t\t", b"sk-", b"\xc3\x28"]))
    return values


def test_fuzzed_headers_never_raise_and_both_headers_agree(raw: str) -> None:
    rng = random.Random(20261122)
    for value in _fuzz_values(rng, raw):
        text = value.decode("latin-1")
        from_asgi = key_from_asgi_headers([(b"authorization", value)])
        from_text = key_from_headers(authorization=text, x_api_key=None)
        assert from_asgi == from_text
        token = from_text
        assert token is not None
        # the same token sent as x-api-key gets the same decision
        assert key_from_headers(authorization=None, x_api_key=token) == token
        parsed = key_parse(token)
        assert parsed is None or token == raw
        body = json.loads(invalid_key_error_body(presented=token))
        assert body["error"]["code"] == "invalid_api_key"
        assert raw not in body["error"]["message"]


def test_the_401_envelope_matches_openai_and_never_echoes_the_key(raw: str) -> None:
    missing = invalid_key_error(presented=None)
    assert missing["error"]["type"] == "invalid_request_error"
    assert missing["error"]["param"] is None
    assert missing["error"]["code"] == "invalid_api_key"
    assert "didn't provide an API key" in missing["error"]["message"]
    wrong = invalid_key_error(presented=raw)["error"]["message"]
    assert wrong.startswith(f"Incorrect API key provided: sk-ptc_\u2026{raw[-4:]}.")
    assert raw not in wrong and raw[7:17] not in wrong
    junk = invalid_key_error(presented="<script>alert(1)</script>")["error"]["message"]
    assert "script" not in junk
