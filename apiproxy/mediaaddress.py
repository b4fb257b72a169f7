"""Which media URLs Portico may fetch, and from which addresses: pure rules,
no I/O (apiproxy.mediafetch applies them to every hop and every address a
name resolves to).

A URL is fetched only over http or https, without userinfo, from a host that
is a plain name, a canonical dotted-quad IPv4 address or an IPv6 address.
Legacy numeric forms (2130706433, 0177.0.0.1, 0x7f.1, 127.1) are refused
outright: the C resolver maps them onto addresses that a check of the text
would miss, and no real media host is named that way.

An address is allowed only if it is a public unicast one. Python's ipaddress
flags differ between patch releases (3.11.7 calls 224.0.0.1 and 3fff::1
global), so the forbidden ranges are listed here, and `is_global` is only a
last net. IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64, 6to4)
are judged by the IPv4 address they carry; Teredo and IPv4-compatible
addresses are refused. MEDIA_FETCH_ALLOW_NETWORKS exempts networks (a site's
own media host, the test suite's loopback server): an address inside one of
them is allowed whatever range it is in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)

from yarl import URL

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

SCHEMES = frozenset({"http", "https"})

# (network, what to call an address in it), most specific first where they nest.
_FORBIDDEN: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ip_network(network), label)
    for network, label in (
        ("0.0.0.0/8", "an unspecified address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "a reserved (IETF protocol) address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a reserved (6to4 relay) address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("::/96", "an IPv4-compatible address"),
        ("64:ff9b:1::/48", "a local NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("2001::/32", "a Teredo address"),
        ("2001:2::/48", "a benchmarking address"),
        ("2001:db8::/32", "a documentation address"),
        ("2001::/23", "a reserved (IETF protocol) address"),
        ("3fff::/20", "a documentation address"),
        ("5f00::/16", "a reserved (SRv6) address"),
        ("fc00::/7", "a private (unique local) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
        ("::/8", "a reserved address"),
    )
)
_NAT64 = IPv6Network("64:ff9b::/96")
_SIXTOFOUR = IPv6Network("2002::/16")

# A host whose last label is a number is an IPv4 address, in whatever base
# (the WHATWG URL standard's rule, which browsers and resolvers follow).
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)
_CANONICAL_V4 = re.compile(r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")
_HOST_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_.])?")


class AddressRefused(ValueError):
    """A URL or address Portico does not fetch from; the text says why."""


def networks_parse(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """MEDIA_FETCH_ALLOW_NETWORKS as networks (validated at start-up)."""
    return tuple(ip_network(value, strict=False) for value in values)


def address_refusal(
    address: IPAddress, *, allowed: Sequence[IPNetwork] = ()
) -> str | None:
    """Why Portico must not connect to `address` (e.g. "a loopback
    address"), or None if it may."""
    if isinstance(address, IPv6Address):
        if address.scope_id:
            return "a scoped (zone) address"
        carried = _carried_v4(address)
        if carried is not None:
            return address_refusal(carried, allowed=allowed)
    if any(address in network for network in allowed):
        return None
    for network, label in _FORBIDDEN:
        if address in network:
            return label
    if not address.is_global or address.is_multicast or address.is_reserved:
        return "a reserved address"
    return None


def _carried_v4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 or 6to4 address leads to."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIXTOFOUR:
        return address.sixtofour
    return None


def host_address(host: str) -> IPAddress | None:
    """The address a URL's host names literally, None for a name. Raises
    AddressRefused for a host no fetch may use (bad characters, a zone id,
    a legacy numeric IPv4 form)."""
    if ":" in host:
        if "%" in host:
            raise AddressRefused("it names a scoped (zone) IPv6 address")
        try:
            return IPv6Address(host.strip("[]"))
        except ValueError:
            raise AddressRefused("its host is not a valid IPv6 address") from None
    lowered = host.lower()
    last = lowered[:-1] if lowered.endswith(".") else lowered
    if _NUMERIC_LABEL.fullmatch(last.rsplit(".", 1)[-1]):
        parts = lowered.split(".")
        if len(parts) != 4 or not all(_CANONICAL_V4.fullmatch(p) for p in parts):
            raise AddressRefused(
                "its host is a numeric address in a non-standard form "
                "(write IPv4 addresses as four decimal numbers)"
            )
        return IPv4Address(lowered)
    if not _HOST_NAME.fullmatch(lowered) or ".." in lowered:
        raise AddressRefused("its host is not a valid name")
    return None


def url_refusal(url: URL) -> str | None:
    """Why a (first or redirected) URL may not be fetched at all, before any
    name is resolved; None if its scheme, userinfo and host are acceptable."""
    if url.scheme not in SCHEMES:
        return "only http and https URLs are fetched"
    if url.raw_user is not None or url.raw_password is not None:
        return "URLs with a user name or password are not fetched"
    if not url.raw_host:
        return "the URL has no host"
    try:
        host_address(url.raw_host)
    except AddressRefused as refused:
        return str(refused)
    return None


def literal_refusal(url: URL, *, allowed: Sequence[IPNetwork]) -> str | None:
    """For a URL whose host is an address (no name to resolve): why it may
    not be connected to, or None."""
    address = host_address(url.raw_host or "")
    if address is None:
        return None
    label = address_refusal(address, allowed=allowed)
    return None if label is None else f"its address is {label}"


def resolved_refusal(
    host: str, addresses: Iterable[str], *, allowed: Sequence[IPNetwork]
) -> str | None:
    """For the addresses a name resolved to: why the name may not be fetched
    from (one forbidden address spoils them all: a name that also points
    inwards is not trusted), or None."""
    for text in addresses:
        label = address_refusal(ip_address(text), allowed=allowed)
        if label is not None:
            return f"'{host}' resolves to {label}"
    return None
