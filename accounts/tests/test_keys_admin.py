"""The admin console for keys: search, revoke action, no digest, key counts."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts.models import ApiKey, User
from accounts.selectors import apikey_authenticate
from tests.factories import apikey_make

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/accounts/apikey/"


@pytest.fixture
def admin_client_(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def test_keys_are_searchable_by_user_name_and_lookup_id(
    admin_client_: Client, alice: User, bob: User
) -> None:
    laptop = apikey_make(user=alice, name="laptop")
    cluster = apikey_make(user=bob, name="cluster job")
    for term, found, missing in [
        ("alice", laptop, cluster),
        ("cluster", cluster, laptop),
        (laptop.key.lookup_id, laptop, cluster),
        ("bob@example.org", cluster, laptop),
    ]:
        page = admin_client_.get(CHANGELIST, {"q": term}).content.decode()
        assert found.key.display in page, term
        assert missing.key.display not in page, term


def test_the_digest_is_never_displayed(admin_client_: Client, alice: User) -> None:
    issued = apikey_make(user=alice)
    for url in (CHANGELIST, f"{CHANGELIST}{issued.key.pk}/change/"):
        page = admin_client_.get(url).content.decode()
        assert issued.key.digest not in page
        assert issued.raw not in page
        assert "digest" not in page.lower()


def test_the_revoke_action_revokes_the_selected_keys(
    admin_client_: Client, alice: User
) -> None:
    one = apikey_make(user=alice, name="one")
    two = apikey_make(user=alice, name="two")
    keep = apikey_make(user=alice, name="keep")
    response = admin_client_.post(
        CHANGELIST,
        {
            "action": "revoke_selected",
            "_selected_action": [one.key.pk, two.key.pk],
        },
        follow=True,
    )
    assert "Revoked 2 key(s)." in response.content.decode()
    assert apikey_authenticate(raw_key=one.raw) is None
    assert apikey_authenticate(raw_key=two.raw) is None
    assert apikey_authenticate(raw_key=keep.raw) is not None


def test_keys_cannot_be_added_in_admin(admin_client_: Client) -> None:
    assert admin_client_.get(f"{CHANGELIST}add/").status_code == 403


def test_the_state_filter(admin_client_: Client, alice: User) -> None:
    active = apikey_make(user=alice, name="active one")
    gone = apikey_make(user=alice, name="gone one")
    ApiKey.objects.filter(pk=gone.key.pk).update(revoked_at="2026-01-01T00:00Z")
    page = admin_client_.get(CHANGELIST, {"state": "revoked"}).content.decode()
    assert "gone one" in page and "active one" not in page
    page = admin_client_.get(CHANGELIST, {"state": "active"}).content.decode()
    assert "active one" in page and "gone one" not in page
    assert active.raw not in page


def test_the_users_list_shows_active_key_counts(
    admin_client_: Client, alice: User, bob: User
) -> None:
    apikey_make(user=alice, name="a")
    apikey_make(user=alice, name="b")
    revoked = apikey_make(user=alice, name="c").key
    ApiKey.objects.filter(pk=revoked.pk).update(revoked_at="2026-01-01T00:00Z")
    page = admin_client_.get("/admin/accounts/user/").content.decode()
    assert "Active API keys" in page
    assert f'?user__id__exact={alice.pk}">2</a>' in page
    assert f'?user__id__exact={bob.pk}">0</a>' in page


def test_deactivating_users_in_admin_stops_their_keys(
    admin_client_: Client, alice: User
) -> None:
    issued = apikey_make(user=alice)
    admin_client_.post(
        "/admin/accounts/user/",
        {"action": "deactivate_selected", "_selected_action": [alice.pk]},
    )
    alice.refresh_from_db()
    assert not alice.is_active
    assert apikey_authenticate(raw_key=issued.raw) is None


def test_editing_a_user_in_admin_signals_the_key_caches(
    admin_client_: Client, alice: User
) -> None:
    from accounts.keysignal import local_generation

    before = local_generation.value
    group = Group.objects.create(name="lab")
    page = admin_client_.get(f"/admin/accounts/user/{alice.pk}/change/")
    assert page.status_code == 200
    form = {
        "username": "alice",
        "email": "alice@example.org",
        "is_active": "",  # unticked: deactivated
        "groups": [group.pk],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
    }
    response = admin_client_.post(f"/admin/accounts/user/{alice.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    alice.refresh_from_db()
    assert not alice.is_active
    assert local_generation.value > before
