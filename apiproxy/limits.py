"""Which rate limits apply to a request: per user (group default, user
override, site default) and per key, with a share of each user's budget kept
for the browser chat so bulk API use cannot lock a researcher out of the UI."""

from __future__ import annotations

from django.conf import settings

from apiproxy.ratelimit import Bucket
from catalog.selectors import limit_tables as limit_tables_load
from catalog.snapshot import LimitTables
from portal.refreshing import Refreshing

limit_tables: Refreshing[LimitTables] = Refreshing(
    load=limit_tables_load,
    empty=LimitTables(),
    interval_setting="LIMITS_REFRESH_SECONDS",
)


def _most_generous(values: list[int]) -> int | None:
    if not values:
        return None
    return 0 if 0 in values else max(values)


def user_limits(
    tables: LimitTables, user_id: int, group_ids: tuple[int, ...]
) -> tuple[int, int]:
    own_rpm, own_tpm = tables.users.get(user_id, (None, None))
    group_pairs = [tables.groups[g] for g in group_ids if g in tables.groups]
    group_rpm = _most_generous([p[0] for p in group_pairs if p[0] is not None])
    group_tpm = _most_generous([p[1] for p in group_pairs if p[1] is not None])
    rpm = own_rpm if own_rpm is not None else group_rpm
    tpm = own_tpm if own_tpm is not None else group_tpm
    return (
        settings.DEFAULT_USER_RPM if rpm is None else rpm,
        settings.DEFAULT_USER_TPM if tpm is None else tpm,
    )


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
