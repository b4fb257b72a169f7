"""One bounded JSON GET to a backend, for discovery and the health checks:
the backend's key goes only to its own host, redirects are not followed, and
the answer is cut off past a size and a deadline (a backend is not trusted to
be small or quick)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from django.conf import settings

from catalog.models import Backend


class BackendGetFailed(Exception):
    """No usable answer; the message is for staff. `status` is the HTTP
    status when the backend answered with one other than 200."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def backend_json_get(
    backend: Backend, url: str, *, client: httpx.Client | None, max_bytes: int
) -> Any:
    """The parsed JSON answer to GET `url` (on the backend's own host)."""
    seconds = settings.MODEL_DISCOVERY_TIMEOUT_SECONDS
    headers = {"Accept": "application/json"}
    if backend.api_key:
        headers["Authorization"] = f"Bearer {backend.api_key}"
    owned = client is None
    client = client or httpx.Client()
    try:
        body = _body_read(client, url, headers, seconds=seconds, max_bytes=max_bytes)
    except httpx.ConnectError:
        raise BackendGetFailed("Connection refused or host unreachable") from None
    except httpx.TimeoutException:
        raise BackendGetFailed(f"No answer within {seconds} s") from None
    except httpx.HTTPError as error:
        raise BackendGetFailed(f"HTTP failure ({type(error).__name__})") from None
    finally:
        if owned:
            client.close()
    try:
        return json.loads(body)
    except ValueError:
        raise BackendGetFailed("The answer is not JSON") from None


def _body_read(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    *,
    seconds: float,
    max_bytes: int,
) -> bytes:
    deadline = time.monotonic() + seconds
    body = bytearray()
    with client.stream(
        "GET",
        url,
        headers=headers,
        timeout=httpx.Timeout(seconds),
        follow_redirects=False,
    ) as response:
        if response.status_code != 200:
            raise BackendGetFailed(
                f"HTTP {response.status_code}", status=response.status_code
            )
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise BackendGetFailed(
                    f"The answer is larger than {max_bytes // (1024 * 1024)} MB"
                )
            if time.monotonic() > deadline:
                raise BackendGetFailed(f"No complete answer within {seconds} s")
    return bytes(body)
