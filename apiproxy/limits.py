"""Which rate limits apply to a request: per user (group default, user
override, site default) and per key, with a share of each user's budget kept
for the browser chat so bulk API use cannot lock a researcher out of the UI."""

from __future__ import annotations

from django.conf import settings

from apiproxy.ratelimit import Bucket
from catalog.access import limits_effective
from catalog.selectors import limit_tables as limit_tables_load
from catalog.snapshot import LimitTables
from portal.refreshing import Refreshing

limit_tables: Refreshing[LimitTables] = Refreshing(
    load=limit_tables_load,
    empty=LimitTables(),
    interval_setting="LIMITS_REFRESH_SECONDS",
)


# One rule for the proxy and the pages that show a user's limits.
user_limits = limits_effective


def _api_share(limit: int) -> int:
    if not limit:
        return 0
    return max(1, int(limit * (1 - settings.BROWSER_RESERVED_SHARE)))


def buckets_for(
    tables: LimitTables,
    *,
    user_id: int,
    group_ids: tuple[int, ...],
    key_id: int | None,
    browser: bool,
) -> list[Bucket]:
    """The budgets a request draws on. Browser and API traffic of a user share
    one bucket; API requests may fill it only up to (1 - reserved share)."""
    rpm, tpm = user_limits(tables, user_id, group_ids)
    if not browser:
        rpm, tpm = _api_share(rpm), _api_share(tpm)
    buckets = [Bucket(f"user:{user_id}", rpm, tpm)]
    if key_id is not None and key_id in tables.keys:
        key_rpm, key_tpm = tables.keys[key_id]
        buckets.append(Bucket(f"key:{key_id}", key_rpm or 0, key_tpm or 0))
    return buckets
