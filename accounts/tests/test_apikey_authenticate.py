"""The one gate: `apikey_authenticate` turns a presented key into a key record."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.utils import timezone

from accounts.keyformat import BASE62, _checksum, key_generate
from accounts.models import User
from accounts.selectors import apikey_authenticate, apikey_principal_get
from accounts.services import apikey_revoke, user_deactivate
from tests.factories import apikey_make

pytestmark = pytest.mark.django_db


def test_it_accepts_a_fresh_key_in_one_query(
    alice: User, django_assert_num_queries
) -> None:
    issued = apikey_make(user=alice)
    with django_assert_num_queries(1):
        key = apikey_authenticate(raw_key=issued.raw)
    assert key == issued.key
    assert key.user == alice


def test_it_rejects_a_malformed_key_without_touching_the_database(
    alice: User, django_assert_num_queries
) -> None:
    raw = apikey_make(user=alice).raw
    last = raw[-1]
    typo = raw[:-1] + BASE62[(BASE62.index(last) + 1) % 62]
    with django_assert_num_queries(0):
        for value in [typo, "", "sk-ptc_", "Bearer x", "x" * 100_000, raw + "a"]:
            assert apikey_authenticate(raw_key=value) is None


def test_it_rejects_an_unknown_key(alice: User, django_assert_num_queries) -> None:
    apikey_make(user=alice)
    with django_assert_num_queries(1):
        assert apikey_authenticate(raw_key=key_generate(site_tag="ptc").raw) is None


def test_it_rejects_a_right_lookup_id_with_a_wrong_secret(alice: User) -> None:
    issued = apikey_make(user=alice)
    forged = key_generate(site_tag="ptc")
    # Same lookup id, a different secret, a valid checksum: only the digest
    # compare can refuse it.
    body = "sk-ptc_" + issued.key.lookup_id + forged.raw[17:-6]
    assert apikey_authenticate(raw_key=body + _checksum(body)) is None


def test_it_rejects_a_revoked_key(alice: User) -> None:
    issued = apikey_make(user=alice)
    apikey_revoke(key=issued.key)
    assert apikey_authenticate(raw_key=issued.raw) is None


def test_it_rejects_an_expired_key(alice: User) -> None:
    issued = apikey_make(user=alice, expires_at=timezone.now() + timedelta(hours=1))
    assert apikey_authenticate(raw_key=issued.raw) is not None
    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
        assert apikey_authenticate(raw_key=issued.raw) is None


def test_it_rejects_the_key_of_a_deactivated_user(alice: User) -> None:
    issued = apikey_make(user=alice)
    user_deactivate(user=alice)
    assert apikey_authenticate(raw_key=issued.raw) is None


def test_the_principal_carries_user_groups_and_models(alice: User) -> None:
    group = Group.objects.create(name="lab")
    alice.groups.add(group)
    issued = apikey_make(user=alice, allowed_models=["llama-3-8b", "qwen"])
    principal = apikey_principal_get(raw_key=issued.raw)
    assert principal is not None
    assert principal.user_id == alice.pk and principal.username == "alice"
    assert principal.group_ids == (group.pk,)
    assert principal.allowed_models == ("llama-3-8b", "qwen")
    assert principal.allows_model("qwen") and not principal.allows_model("gpt-4")
    assert principal.display == issued.key.display
    assert issued.raw not in repr(principal)
