"""When creating or rolling a key asks for the password again.

allauth's `reauthentication_required` only counts explicit reauthentications;
Portico also lets a fresh login count, so that someone who just signed in is
not asked twice. `reauthentication_due` is the `enabled` test handed to the
decorator: stale means no login or reauthentication in this session within
ACCOUNT_REAUTHENTICATION_TIMEOUT seconds. The account adapter applies the same
rule to allauth's own reauthentication checks (the two-factor pages).
"""

from __future__ import annotations

import time

# allauth keeps per-session authentication records (login and reauthentication
# times); there is no public accessor. The version is pinned, and
# accounts/tests/test_settings_page.py fails should this ever change.
from allauth.account.internal.flows.login import get_authentication_records
from django.conf import settings
from django.http import HttpRequest


def reauthentication_due(request: HttpRequest) -> bool:
    user = request.user
    if not user.is_authenticated:
        return True
    records = get_authentication_records(request, user)  # type: ignore[arg-type]
    latest = max((float(record.get("at", 0)) for record in records), default=0.0)
    return time.time() - latest >= settings.ACCOUNT_REAUTHENTICATION_TIMEOUT
