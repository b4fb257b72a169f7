"""Creating, revoking and rolling keys, and recording their use."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import ApiKey, User
from accounts.selectors import apikey_authenticate
from accounts.services import (
    apikey_create,
    apikey_last_used_record,
    apikey_revoke,
    apikey_roll,
)
from tests.factories import apikey_make

pytestmark = pytest.mark.django_db


def test_it_stores_only_the_lookup_id_and_digest(alice: User) -> None:
    issued = apikey_make(user=alice, name="  laptop ")
    key = ApiKey.objects.get()
    assert key.name == "laptop"
    assert key.lookup_id == issued.raw[7:17]
    assert len(key.digest) == 64 and issued.raw not in key.digest
    assert key.display == f"sk-ptc_\u2026{issued.raw[-4:]}"
    assert issued.raw not in repr(issued)


def test_it_uses_the_configured_site_tag(alice: User, settings) -> None:
    settings.API_KEY_SITE_TAG = "uni"
    issued = apikey_make(user=alice)
    assert issued.raw.startswith("sk-uni_")
    assert apikey_authenticate(raw_key=issued.raw) == issued.key


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "sk-ptc_" + "A" * 48}, "name"),
        ({"allowed_models": ["sk-uni_" + "b" * 48]}, "allowed_models"),
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, "expires_at"),
        ({"allowed_models": []}, "allowed_models"),
        ({"allowed_models": ["a b"]}, "allowed_models"),
        ({"allowed_models": "gpt"}, "allowed_models"),
        ({"allowed_models": [1]}, "allowed_models"),
    ],
)
def test_it_rejects_bad_input_naming_the_field(
    alice: User, fields: dict, field: str
) -> None:
    fields = {"name": "laptop", **fields}
    with pytest.raises(ValidationError) as error:
        apikey_create(user=alice, **fields)
    assert field in error.value.message_dict
    assert not ApiKey.objects.exists()


def test_it_refuses_keys_for_inactive_users(alice: User) -> None:
    alice.is_active = False
    alice.save()
    with pytest.raises(ValidationError):
        apikey_make(user=alice)


def test_allowed_models_are_cleaned_and_deduplicated(alice: User) -> None:
    issued = apikey_make(user=alice, allowed_models=[" qwen ", "llama", "qwen", ""])
    assert issued.key.allowed_models == ["qwen", "llama"]


def test_the_lifetime_cap_cuts_a_missing_or_later_expiry(alice: User, settings) -> None:
    settings.API_KEY_MAX_LIFETIME_DAYS = 30
    cap = timezone.now() + timedelta(days=30)
    unlimited = apikey_make(user=alice)
    assert unlimited.expiry_capped
    assert abs((unlimited.key.expires_at - cap).total_seconds()) < 5
    later = apikey_make(user=alice, expires_at=timezone.now() + timedelta(days=90))
    assert later.expiry_capped and later.key.expires_at <= cap + timedelta(seconds=5)
    sooner_at = timezone.now() + timedelta(days=3)
    sooner = apikey_make(user=alice, expires_at=sooner_at)
    assert not sooner.expiry_capped and sooner.key.expires_at == sooner_at


def test_no_cap_means_keys_can_live_forever(alice: User) -> None:
    issued = apikey_make(user=alice)
    assert issued.key.expires_at is None and not issued.expiry_capped


def test_revoking_is_idempotent_and_keeps_the_first_time(alice: User) -> None:
    key = apikey_make(user=alice).key
    apikey_revoke(key=key)
    first = key.revoked_at
    apikey_revoke(key=key)
    assert key.revoked_at == first is not None


def test_rolling_without_grace_stops_the_old_key_now(alice: User) -> None:
    old = apikey_make(user=alice, allowed_models=["qwen"])
    new = apikey_roll(key=old.key)
    assert apikey_authenticate(raw_key=old.raw) is None
    assert apikey_authenticate(raw_key=new.raw) == new.key
    assert new.key.name == old.key.name
    assert new.key.allowed_models == ["qwen"]
    assert new.key.rolled_from == old.key
    old.key.refresh_from_db()
    assert old.key.revoked_at is not None


def test_rolling_with_grace_lets_the_old_key_work_until_it_ends(
    alice: User, time_machine
) -> None:
    old = apikey_make(user=alice)
    new = apikey_roll(key=old.key, grace_seconds=3600)
    assert apikey_authenticate(raw_key=old.raw) == old.key
    assert apikey_authenticate(raw_key=new.raw) == new.key
    time_machine.move_to(timezone.now() + timedelta(seconds=3601))
    assert apikey_authenticate(raw_key=old.raw) is None
    assert apikey_authenticate(raw_key=new.raw) == new.key


def test_rolling_keeps_the_lifetime_length_and_never_extends_the_old_key(
    alice: User,
) -> None:
    old = apikey_make(user=alice, expires_at=timezone.now() + timedelta(minutes=10))
    new = apikey_roll(key=old.key, grace_seconds=86400)
    old.key.refresh_from_db()
    assert old.key.expires_at <= timezone.now() + timedelta(minutes=10)
    lifetime = new.key.expires_at - new.key.created_at
    assert abs(lifetime.total_seconds() - 600) < 5


def test_a_key_is_rolled_only_once(alice: User) -> None:
    old = apikey_make(user=alice)
    apikey_roll(key=old.key, grace_seconds=60)
    with pytest.raises(ValidationError, match="already rolled"):
        apikey_roll(key=old.key, grace_seconds=60)


def test_revoked_keys_cannot_be_rolled(alice: User) -> None:
    old = apikey_make(user=alice)
    apikey_revoke(key=old.key)
    with pytest.raises(ValidationError, match="active"):
        apikey_roll(key=old.key)


@pytest.mark.parametrize("grace", [-1, 7 * 86400 + 1])
def test_the_grace_period_is_bounded(alice: User, grace: int) -> None:
    old = apikey_make(user=alice)
    with pytest.raises(ValidationError):
        apikey_roll(key=old.key, grace_seconds=grace)


def test_last_use_is_one_update_that_moves_at_most_once_a_minute(
    alice: User, django_assert_num_queries
) -> None:
    keys = [apikey_make(user=alice, name=f"k{i}").key for i in range(3)]
    ids = [key.pk for key in keys]
    now = timezone.now()
    with django_assert_num_queries(1):
        assert apikey_last_used_record(key_ids=ids, used_at=now) == 3
    # Another process reporting the same minute writes no row.
    assert (
        apikey_last_used_record(key_ids=ids, used_at=now + timedelta(seconds=30)) == 0
    )
    assert apikey_last_used_record(key_ids=ids, used_at=now - timedelta(hours=1)) == 0
    assert (
        apikey_last_used_record(key_ids=ids, used_at=now + timedelta(seconds=61)) == 3
    )
    keys[0].refresh_from_db()
    assert keys[0].last_used_at == now + timedelta(seconds=61)
