"""Each user's time zone: the one chosen in Settings > Account, else the one
the browser reports (static/js/timezone.js keeps it in the `tz` cookie), else
the portal's TIME_ZONE.

Pages then show times in it and read dates in it (a key that expires on
5 January works until the end of 5 January where its owner is). Quotas and
the daily usage tables keep the portal's zone: a window is the same for
everyone who shares it.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from functools import cache

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

ZONE_COOKIE = "tz"


@cache
def zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone_valid(name: str) -> bool:
    return name in zone_names()


def zone_for(request: HttpRequest) -> str | None:
    """The zone to show `request`'s pages in, or None for the portal's."""
    user = getattr(request, "user", None)
    chosen = getattr(user, "time_zone", "") if user is not None else ""
    if chosen and zone_valid(chosen):
        return chosen
    reported = request.COOKIES.get(ZONE_COOKIE, "")
    if reported and zone_valid(reported):
        return reported
    return None


class UserTimezoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = zone_for(request)
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zoneinfo.ZoneInfo(zone))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
