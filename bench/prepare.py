"""Set up the benchmark's database through the real services: a `bench` user
with a fresh API key (earlier bench keys are revoked), and the fake backend
registered and discovered the way `manage.py addbackend` does it.

Runs in its own process with the environment Portico will get (DATABASE_URL,
REDIS_URL); prints {"key": ..., "models": [...]} as JSON.

    python -m bench.prepare --backend-url http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import argparse
import json
import os

# Enough for every stream of the largest scenario to run at once: the bench
# measures the relay, not the per-model concurrency limit.
BACKEND_MAX_CONCURRENCY = 4096


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend-url", required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from accounts.models import ApiKey, User
    from accounts.services import apikey_create, apikey_revoke, user_create_for_keys
    from catalog.services import backend_add, backend_discover_models

    user = User.objects.filter(username="bench").first()
    if user is None:
        user = user_create_for_keys(username="bench")
    for old in ApiKey.objects.filter(user=user, revoked_at__isnull=True):
        apikey_revoke(key=old)
    issued = apikey_create(user=user, name="bench")
    backend = backend_add(
        name="bench",
        base_url=args.backend_url,
        max_concurrency=BACKEND_MAX_CONCURRENCY,
    )
    result = backend_discover_models(backend=backend)
    if not result.ok:
        raise SystemExit(f"discovery of the fake backend failed: {result.error}")
    print(json.dumps({"key": issued.raw, "models": sorted(result.served)}))


if __name__ == "__main__":
    main()
