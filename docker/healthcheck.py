"""Container health check: does the portal answer its login page?

Stdlib only, so that a check every 30 s does not pay for a Django start-up.
It sends what production settings expect from a real request: a Host from
ALLOWED_HOSTS and X-Forwarded-Proto (else SECURE_SSL_REDIRECT answers 301).
Exit status 0 is healthy, 1 unhealthy (Docker's HEALTHCHECK convention).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

# The port of the CMD in docker/Dockerfile; a test passes another as argv[1].
URL = "http://127.0.0.1:8000/accounts/login/"


def host_header(allowed_hosts: str) -> str:
    """A concrete host name that ALLOWED_HOSTS accepts."""
    for entry in (item.strip() for item in allowed_hosts.split(",")):
        if not entry or entry == "*":
            continue
        # ".example.org" allows example.org and its subdomains.
        return entry.lstrip(".")
    return "localhost"


def main(url: str = URL) -> int:
    if not url.startswith("http://"):
        print(f"not an http:// URL: {url}", file=sys.stderr)
        return 1
    request = urllib.request.Request(  # noqa: S310 (checked: http only)
        url,
        headers={
            "Host": host_header(os.environ.get("ALLOWED_HOSTS", "")),
            "X-Forwarded-Proto": "https",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310  # nosec B310
            healthy = response.status == 200
    except (urllib.error.URLError, OSError) as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
