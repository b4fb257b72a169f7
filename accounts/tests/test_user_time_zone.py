"""Each user reads the portal in their own time zone: the one they chose,
else the one their browser reports, else the portal's."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta

from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey
from accounts.tests.test_settings_page import CREATE

TALLINN = zoneinfo.ZoneInfo("Europe/Tallinn")


def key_made(client: Client, day: str) -> ApiKey:
    client.post(CREATE, {"name": "tz", "expires_on": day}, follow=True)
    return ApiKey.objects.get(name="tz")


def a_day_ahead() -> str:
    return (timezone.localdate() + timedelta(days=10)).isoformat()


def test_a_key_expires_at_the_end_of_the_day_where_the_browser_is(
    alice_client: Client,
) -> None:
    day = a_day_ahead()
    alice_client.cookies["tz"] = "Europe/Tallinn"
    key = key_made(alice_client, day)
    assert key.expires_at == datetime.fromisoformat(f"{day}T23:59:59.999999").replace(
        tzinfo=TALLINN
    )
    page = alice_client.get("/settings/account/").content.decode()
    assert f"{day} 23:59 EET" in page or f"{day} 23:59 EEST" in page


def test_the_zone_chosen_in_settings_wins_over_the_browsers(
    alice_client: Client, alice
) -> None:
    alice.time_zone = "America/Chicago"
    alice.save(update_fields=["time_zone"])
    alice_client.cookies["tz"] = "Europe/Tallinn"
    day = a_day_ahead()
    key = key_made(alice_client, day)
    assert (
        key.expires_at.astimezone(zoneinfo.ZoneInfo("America/Chicago")).strftime(
            "%Y-%m-%d %H:%M"
        )
        == f"{day} 23:59"
    )


def test_a_zone_that_does_not_exist_is_ignored(alice_client: Client) -> None:
    alice_client.cookies["tz"] = "Mars/Olympus_Mons"
    day = a_day_ahead()
    key = key_made(alice_client, day)
    assert timezone.localtime(key.expires_at).strftime("%Y-%m-%d %H:%M:%S") == (
        f"{day} 23:59:59"
    ), "the portal's own zone (UTC in the tests)"


def test_settings_account_saves_a_zone_and_back_to_the_browsers(
    alice_client: Client, alice
) -> None:
    page = alice_client.get("/settings/account/").content.decode()
    assert 'name="time_zone"' in page and "Europe/Tallinn" in page
    alice_client.post("/settings/account/time-zone/", {"time_zone": "Europe/Tallinn"})
    alice.refresh_from_db()
    assert alice.time_zone == "Europe/Tallinn"
    page = alice_client.get("/settings/account/").content.decode()
    assert "Times are shown, and key expiry days read, in Europe/Tallinn." in page
    alice_client.post("/settings/account/time-zone/", {"time_zone": ""})
    alice.refresh_from_db()
    assert alice.time_zone == ""


def test_a_made_up_zone_is_refused_and_nothing_changes(
    alice_client: Client, alice
) -> None:
    response = alice_client.post(
        "/settings/account/time-zone/", {"time_zone": "Europe/Atlantis"}, follow=True
    )
    assert "That time zone does not exist." in response.content.decode()
    alice.refresh_from_db()
    assert alice.time_zone == ""
