"""A second server process for test_revocation_across_processes.

Reads a key from stdin (never argv: that would show in process lists), then
authenticates with it through `key_principal_get` every 10 ms, as the proxy
would. Prints `ready <loads>` once the key works from a warm cache, and
`refused <unix time>` at the first refusal, then exits.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time


async def probe(raw_key: str) -> None:
    from accounts.keycache import key_cache, key_principal_get

    ready = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        principal = await key_principal_get(raw_key)
        if principal is None:
            print(f"refused {time.time():.6f}", flush=True)
            return
        if not ready and key_cache.loads == 1:
            # Warm: answered from the cache from now on.
            for _ in range(20):
                await key_principal_get(raw_key)
            print(f"ready {key_cache.loads}", flush=True)
            ready = True
        await asyncio.sleep(0.01)
    print("timeout", flush=True)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    raw_key = sys.stdin.readline().strip()
    asyncio.run(probe(raw_key))


if __name__ == "__main__":
    main()
