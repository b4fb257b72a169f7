"""The media address rules (apiproxy.mediaaddress): pure functions, every
forbidden form."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from yarl import URL

from apiproxy.mediaaddress import (
    AddressRefused,
    address_refusal,
    host_address,
    literal_refusal,
    networks_parse,
    resolved_refusal,
    url_refusal,
)


@pytest.mark.parametrize(
    ("address", "label"),
    [
        ("0.0.0.0", "an unspecified address"),
        ("0.1.2.3", "an unspecified address"),
        ("10.0.0.1", "a private address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("100.127.255.254", "a shared (carrier-grade NAT) address"),
        ("127.0.0.1", "a loopback address"),
        ("127.255.255.254", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("172.16.0.1", "a private address"),
        ("172.31.255.255", "a private address"),
        ("192.0.0.8", "a reserved (IETF protocol) address"),
        ("192.0.2.1", "a documentation address"),
        ("192.88.99.1", "a reserved (6to4 relay) address"),
        ("192.168.0.1", "a private address"),
        ("198.18.0.1", "a benchmarking address"),
        ("198.19.255.255", "a benchmarking address"),
        ("198.51.100.7", "a documentation address"),
        ("203.0.113.9", "a documentation address"),
        ("224.0.0.1", "a multicast address"),
        ("239.255.255.250", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
        ("255.255.255.255", "a reserved address"),
        ("::", "an unspecified address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("::ffff:169.254.169.254", "a link-local address"),
        ("::127.0.0.1", "an IPv4-compatible address"),
        ("64:ff9b::127.0.0.1", "a loopback address"),
        ("64:ff9b::10.1.1.1", "a private address"),
        ("64:ff9b::169.254.169.254", "a link-local address"),
        ("64:ff9b:1::1", "a local NAT64 address"),
        ("2002:7f00:1::", "a loopback address"),
        ("2002:a9fe:a9fe::1", "a link-local address"),
        ("2002:c0a8:101::", "a private address"),
        ("2001::1", "a Teredo address"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "a Teredo address"),
        ("2001:2::1", "a benchmarking address"),
        ("2001:db8::1", "a documentation address"),
        ("2001:10::1", "a reserved (IETF protocol) address"),
        ("3fff::1", "a documentation address"),
        ("100::1", "a discard-only address"),
        ("5f00::1", "a reserved (SRv6) address"),
        ("fc00::1", "a private (unique local) address"),
        ("fd12:3456::1", "a private (unique local) address"),
        ("fe80::1", "a link-local address"),
        ("fe80::1%eth0", "a scoped (zone) address"),
        ("fec0::1", "a site-local address"),
        ("ff02::1", "a multicast address"),
        ("ff0e::1", "a multicast address"),
        ("1::1", "a reserved address"),
    ],
)
def test_every_forbidden_address_is_named(address: str, label: str) -> None:
    assert address_refusal(ip_address(address)) == label


@pytest.mark.parametrize(
    "address",
    [
        "93.184.215.14",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001:82b::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "2002:808:808::1",
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_refusal(ip_address(address)) is None


def test_allowed_networks_exempt_exactly_their_addresses() -> None:
    allowed = networks_parse(["127.0.0.1/32", "10.20.0.0/24", "fd00:1::/64"])
    for address in ("127.0.0.1", "::ffff:127.0.0.1", "10.20.0.9", "fd00:1::5"):
        assert address_refusal(ip_address(address), allowed=allowed) is None
    for address in ("127.0.0.2", "10.20.1.1", "::1", "fd00:2::5"):
        assert address_refusal(ip_address(address), allowed=allowed) is not None


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",  # decimal
        "017700000001",  # octal
        "0x7f000001",  # hex
        "0177.0.0.1",  # octal parts
        "0x7f.0.0.1",
        "0x7f.1",
        "127.1",
        "127.0.1",
        "127.0.0.01",
        "1.2.3.4.",
        "256.1.1.1",
        "1.2.3.4.5",
        "example.123",
        "0x",
    ],
)
def test_legacy_numeric_ipv4_forms_are_refused_outright(host: str) -> None:
    with pytest.raises(AddressRefused, match="non-standard form"):
        host_address(host)


@pytest.mark.parametrize(
    "host", ["ex%61mple.com", "a b", "x..y", ".example", "exa mple.org", "h\x00st"]
)
def test_malformed_names_are_refused(host: str) -> None:
    with pytest.raises(AddressRefused, match="not a valid name"):
        host_address(host)


def test_names_and_canonical_addresses_are_told_apart() -> None:
    assert host_address("example.org") is None
    assert host_address("cdn-1.example.org.") is None
    assert host_address("xn--mnchen-3ya.de") is None
    assert host_address("93.184.215.14") == ip_address("93.184.215.14")
    assert host_address("::ffff:7f00:1") == ip_address("::ffff:127.0.0.1")
    with pytest.raises(AddressRefused, match="scoped"):
        host_address("fe80::1%25eth0")
    with pytest.raises(AddressRefused, match="not a valid IPv6"):
        host_address("::g")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.org/a.png", "only http and https"),
        ("gopher://example.org/", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("https://user:pass@example.org/a.png", "user name or password"),
        ("https://user@example.org/a.png", "user name or password"),
        ("https://:pass@example.org/a.png", "user name or password"),
        ("http:///a.png", "no host"),
        ("http://0x7f.1/a.png", "non-standard form"),
    ],
)
def test_urls_that_may_never_be_fetched(url: str, words: str) -> None:
    refusal = url_refusal(URL(url))
    assert refusal is not None and words in refusal


def test_fetchable_urls_pass_and_literal_addresses_are_judged() -> None:
    assert url_refusal(URL("https://example.org/a.png?sig=1")) is None
    assert url_refusal(URL("HTTP://Example.ORG:8080/a.png")) is None
    assert literal_refusal(URL("https://example.org/a.png"), allowed=()) is None
    assert literal_refusal(URL("http://8.8.8.8/a.png"), allowed=()) is None
    assert literal_refusal(URL("http://[::1]/a.png"), allowed=()) == (
        "its address is a loopback address"
    )
    allowed = networks_parse(["127.0.0.1/32"])
    assert literal_refusal(URL("http://127.0.0.1:8/a.png"), allowed=allowed) is None


def test_one_forbidden_answer_spoils_a_name() -> None:
    refusal = resolved_refusal(
        "cdn.example", ["93.184.215.14", "127.0.0.1"], allowed=()
    )
    assert refusal == "'cdn.example' resolves to a loopback address"
    assert resolved_refusal("cdn.example", ["93.184.215.14"], allowed=()) is None
    assert (
        resolved_refusal("localhost", ["::1"], allowed=())
        == "'localhost' resolves to a loopback address"
    )
