"""Remote media URLs, fetched by Portico and passed to the backend inline.

A backend never fetches anything on a caller's behalf (it sits beside the GPU
hosts, where a URL could reach what the caller cannot). Once a request is
admitted, each remote URL that the parse step found (apiproxy.mediaparts) is
fetched here, once, and replaced in the body by a base64 data: URL.

- Addresses: a name is resolved once, by the connector's resolver below,
  which refuses it if any address it resolves to is not public
  (apiproxy.mediaaddress); the connector then connects to exactly those
  addresses, with the name in the Host header and TLS SNI, so a second,
  different DNS answer (rebinding) is never asked for. Literal addresses,
  which aiohttp does not resolve, are checked before each hop.
- Redirects are followed by hand, at most MAX_REDIRECTS, each target checked
  like the first URL.
- Bounds: MEDIA_FETCH_MAX_BYTES per file (reading stops past it), the larger
  of that and MAX_REQUEST_BYTES for all files of a request, and
  MEDIA_FETCH_TIMEOUT seconds for all of a request's fetches together,
  CONCURRENCY at a time.
- Nothing of the caller goes out: a session of its own per request (no
  cookie jar, no environment proxies or .netrc, no pooled connections shared
  with anything), a plain User-Agent and Accept, no Authorization, no request
  id.

Any failure is a 400 naming the part (`param`) and the reason; each fetch is
counted (portico_media_fetches_total) and logged with its host only.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from django.conf import settings
from yarl import URL

from apiproxy.errors import ProxyError
from apiproxy.mediaaddress import (
    IPNetwork,
    literal_refusal,
    networks_parse,
    resolved_refusal,
    url_refusal,
)
from apiproxy.mediaparts import (
    KIND_ACCEPT,
    MediaRef,
    content_type_refusal,
    media_type_of,
)
from apiproxy.metrics import media_fetch_observe
from apiproxy.parsing import PARSE_IN_THREAD_BYTES, ParsedRequest
from apiproxy.requestlog import media_fetch_log

# getaddrinfo's rows: family, type, proto, canonname, sockaddr.
AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]

CONCURRENCY = 4
MAX_REDIRECTS = 3
USER_AGENT = "Portico-media-fetch"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


class MediaRefused(Exception):
    """A fetch that may not go on: `outcome` is its metrics label, `reason`
    what the caller is told."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason


@dataclass
class _Job:
    """What the fetches of one request share."""

    request_id: str
    deadline: float  # loop time
    allowed: tuple[IPNetwork, ...]
    total_limit: int
    gate: asyncio.Semaphore
    taken: int = 0  # bytes read so far, all files together


class CheckingResolver(AbstractResolver):
    """getaddrinfo (in the loop's executor, off the event loop), then the
    address rules: a name is refused if any of its addresses is forbidden.
    The connector connects only to the addresses returned here."""

    def __init__(self, allowed: tuple[IPNetwork, ...]) -> None:
        self.allowed = allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            infos = await self.lookup(host, port, family)
        except (OSError, UnicodeError):
            raise MediaRefused(
                "unresolved", f"the name '{host}' does not resolve"
            ) from None
        addresses = [str(info[4][0]) for info in infos]
        refusal = resolved_refusal(host, addresses, allowed=self.allowed)
        if refusal is not None:
            raise MediaRefused("address_refused", refusal)
        if not infos:
            raise MediaRefused("unresolved", f"the name '{host}' does not resolve")
        numeric = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
        return [
            ResolveResult(
                hostname=host,
                host=str(info[4][0]),
                port=int(info[4][1]),
                family=info[0],
                proto=info[2],
                flags=numeric,
            )
            for info in infos
        ]

    async def lookup(
        self, host: str, port: int, family: socket.AddressFamily
    ) -> list[AddrInfo]:
        """The name service's answer (tests stand a fixed table in for it)."""
        loop = asyncio.get_running_loop()
        return await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, family=family
        )

    async def close(self) -> None:
        return None


def media_session_make(resolver: CheckingResolver) -> aiohttp.ClientSession:
    """A client session for one request's fetches, never the backends' one:
    no cookies kept, no proxy or credentials from the environment, no
    connection kept open (nothing to reuse for anyone else)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            resolver=resolver,
            use_dns_cache=False,
            force_close=True,
            limit=CONCURRENCY,
        ),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        timeout=aiohttp.ClientTimeout(total=None),
        skip_auto_headers=("User-Agent",),
    )


async def media_inline(
    parsed: ParsedRequest,
    *,
    request_id: str,
    resolver: type[CheckingResolver] = CheckingResolver,
) -> None:
    """Fetch every remote media URL of an admitted request and write each
    one's data: URL in its place. All or nothing: the first failure cancels
    the other fetches and raises a 400 naming its part."""
    if not parsed.media:
        return
    allowed = networks_parse(settings.MEDIA_FETCH_ALLOW_NETWORKS)
    job = _Job(
        request_id=request_id,
        deadline=asyncio.get_running_loop().time() + settings.MEDIA_FETCH_TIMEOUT,
        allowed=allowed,
        total_limit=max(settings.MEDIA_FETCH_MAX_BYTES, settings.MAX_REQUEST_BYTES),
        gate=asyncio.Semaphore(CONCURRENCY),
    )
    async with media_session_make(resolver(allowed)) as session:
        tasks = [
            asyncio.create_task(_inline_one(session, ref, job)) for ref in parsed.media
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error


async def _inline_one(session: aiohttp.ClientSession, ref: MediaRef, job: _Job) -> None:
    started = time.monotonic()
    outcome, size = "cancelled", 0
    try:
        async with job.gate, asyncio.timeout_at(job.deadline):
            content_type, body = await _fetch(session, ref, job)
            size = len(body)
            ref.holder[ref.key] = await _data_url(content_type, body)
        outcome = "ok"
    except MediaRefused as refused:
        outcome = refused.outcome
        raise _fetch_failed(ref, refused.reason) from None
    except TimeoutError:
        outcome = "timeout"
        seconds = f"{settings.MEDIA_FETCH_TIMEOUT:g}"
        raise _fetch_failed(ref, f"it took longer than {seconds} s") from None
    except (aiohttp.ClientError, OSError) as error:
        outcome = "unreachable"
        raise _fetch_failed(ref, _client_error_reason(error)) from None
    finally:
        media_fetch_observe(outcome=outcome, size=size)
        media_fetch_log(
            request_id=job.request_id,
            host=URL(ref.url).raw_host or "",
            outcome=outcome,
            size=size,
            duration_ms=round((time.monotonic() - started) * 1000),
        )


def _fetch_failed(ref: MediaRef, reason: str) -> ProxyError:
    return ProxyError(
        400,
        f"'{ref.param}' could not be fetched: {reason}. Use a public http(s) URL "
        "or send the file inline as a data URL.",
        code="media_fetch_failed",
        param=ref.param,
    )


def _client_error_reason(error: aiohttp.ClientError | OSError) -> str:
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return "the media host's TLS certificate could not be verified"
    if isinstance(error, aiohttp.ClientConnectorError):
        return "the media host could not be reached"
    return "the media host's answer could not be read"


async def _fetch(
    session: aiohttp.ClientSession, ref: MediaRef, job: _Job
) -> tuple[str, bytes]:
    """The content type and body at `ref.url`, following redirects by hand
    (each target checked like the first URL)."""
    url = URL(ref.url).with_fragment(None)
    for hop in range(MAX_REDIRECTS + 1):
        refusal = url_refusal(url) or literal_refusal(url, allowed=job.allowed)
        if refusal is not None:
            after = "after a redirect, " if hop else ""
            raise MediaRefused("address_refused", after + refusal)
        async with session.get(
            url, headers=_headers(ref.kind), allow_redirects=False
        ) as response:
            if response.status in _REDIRECTS:
                url = _redirect_target(url, response)
                continue
            if response.status != 200:
                raise MediaRefused(
                    "http_status", f"the media host answered HTTP {response.status}"
                )
            content_type = _content_type_check(ref.kind, response)
            return content_type, await _body_read(response, job)
    raise MediaRefused("redirects", f"it redirects more than {MAX_REDIRECTS} times")


def _headers(kind: str) -> dict[str, str]:
    """All that is sent: nothing of the caller's request goes with it."""
    return {
        "User-Agent": USER_AGENT,
        "Accept": KIND_ACCEPT[kind],
        "Accept-Encoding": "identity",
    }


def _redirect_target(url: URL, response: aiohttp.ClientResponse) -> URL:
    location = response.headers.get("Location", "")
    try:
        target = url.join(URL(location)).with_fragment(None)
    except ValueError:
        target = None
    if not location or target is None:
        raise MediaRefused("http_status", "the media host redirects to no valid URL")
    return target


def _content_type_check(kind: str, response: aiohttp.ClientResponse) -> str:
    """The media type of the answer, if it is one `kind` may have."""
    got = media_type_of(response.headers.get("Content-Type", ""))
    refusal = content_type_refusal(kind, got)
    if refusal is not None:
        raise MediaRefused("wrong_type", refusal)
    return got


async def _body_read(response: aiohttp.ClientResponse, job: _Job) -> bytes:
    """The whole body, read no further than the limits allow."""
    limit = settings.MEDIA_FETCH_MAX_BYTES
    declared = response.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        body += chunk
        job.taken += len(chunk)
        if len(body) > limit:
            raise _too_large(limit)
        if job.taken > job.total_limit:
            raise MediaRefused(
                "too_large",
                "the media files of this request come to more than "
                f"{job.total_limit} bytes together",
            )
    return bytes(body)


def _too_large(limit: int) -> MediaRefused:
    return MediaRefused("too_large", f"the file is larger than {limit} bytes")


async def _data_url(content_type: str, body: bytes) -> str:
    """base64 of a large file in a worker thread (20 MB take ~30 ms)."""
    if len(body) > PARSE_IN_THREAD_BYTES:
        encoded = await asyncio.to_thread(base64.b64encode, body)
    else:
        encoded = base64.b64encode(body)
    return f"data:{content_type};base64,{encoded.decode('ascii')}"
