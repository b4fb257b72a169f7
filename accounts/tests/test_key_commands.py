"""`issuekey` and `revokekey`, as operators and scripts run them."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import ApiKey, User
from accounts.selectors import apikey_authenticate
from tests.factories import apikey_make

pytestmark = pytest.mark.django_db


def issuekey(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("issuekey", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_issuekey_prints_only_the_key(alice: User) -> None:
    out, _ = issuekey("alice")
    raw = out.strip()
    assert out == raw + "\n"
    key = apikey_authenticate(raw_key=raw)
    assert key is not None and key.user == alice
    assert key.name == "issued by operator"


def test_issuekey_with_every_option(settings) -> None:
    out, err = issuekey(
        "bench",
        "--create-user",
        "--staff",
        "--name",
        "load test",
        "--expires-days",
        "2",
        "--models",
        "qwen,llama",
    )
    key = apikey_authenticate(raw_key=out.strip())
    assert key is not None
    assert key.user.username == "bench" and key.user.is_staff
    assert not key.user.has_usable_password()
    assert key.name == "load test"
    assert key.allowed_models == ["qwen", "llama"]
    assert key.expires_at <= timezone.now() + timedelta(days=2)
    assert "Created user" in err
    # Running it again reuses the (staff) user.
    out2, err2 = issuekey("bench", "--create-user", "--staff")
    assert apikey_authenticate(raw_key=out2.strip()).user == key.user
    assert "Created user" not in err2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody"], "No user 'nobody'"),
        (["alice", "--staff"], "is not staff"),
        (["alice", "--expires-days", "0"], "must be 1 or more"),
        (["alice", "--models", "a b"], "allowed_models"),
        (["alice", "--name", ""], "name"),
    ],
)
def test_issuekey_refuses_bad_requests(alice: User, args: list, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        issuekey(*args)
    assert not ApiKey.objects.exists()


def test_issuekey_reports_a_capped_expiry_on_stderr(alice: User, settings) -> None:
    settings.API_KEY_MAX_LIFETIME_DAYS = 3
    out, err = issuekey("alice", "--expires-days", "30")
    assert "capped" in err
    assert apikey_authenticate(raw_key=out.strip()).expires_at <= (
        timezone.now() + timedelta(days=3)
    )


def test_revokekey_by_lookup_id(alice: User) -> None:
    issued = apikey_make(user=alice, name="laptop")
    out = io.StringIO()
    call_command("revokekey", issued.key.lookup_id, stdout=out)
    assert "revoked" in out.getvalue() and issued.key.display in out.getvalue()
    assert issued.raw not in out.getvalue()
    assert apikey_authenticate(raw_key=issued.raw) is None
    out = io.StringIO()
    call_command("revokekey", issued.key.lookup_id, stdout=out)
    assert "already revoked" in out.getvalue()


def test_revokekey_by_the_key_itself_read_from_stdin(alice: User, monkeypatch) -> None:
    issued = apikey_make(user=alice)
    monkeypatch.setattr("sys.stdin", io.StringIO(issued.raw + "\n"))
    out = io.StringIO()
    call_command("revokekey", "-", stdout=out)
    assert issued.raw not in out.getvalue()
    assert apikey_authenticate(raw_key=issued.raw) is None


def test_revokekey_by_the_key_on_the_command_line(alice: User) -> None:
    issued = apikey_make(user=alice)
    call_command("revokekey", issued.raw, stdout=io.StringIO())
    assert apikey_authenticate(raw_key=issued.raw) is None


def test_revokekey_refuses_unknown_keys_without_echoing_them(alice: User) -> None:
    issued = apikey_make(user=alice)
    for value in ["AAAAAAAAAA", "nonsense", issued.raw[:-1] + "!"]:
        with pytest.raises(CommandError) as error:
            call_command("revokekey", value, stdout=io.StringIO())
        assert issued.raw not in str(error.value)
    assert apikey_authenticate(raw_key=issued.raw) is not None


def test_issuekey_sets_the_keys_own_rate_limits(alice) -> None:
    from io import StringIO

    from django.core.management import call_command

    from accounts.selectors import apikey_authenticate
    from catalog.models import KeyLimits

    out = StringIO()
    call_command("issuekey", "alice", "--rpm", "30", "--tpm", "0", stdout=out)
    key = apikey_authenticate(raw_key=out.getvalue().strip())
    limits = KeyLimits.objects.get(key=key)
    assert (limits.rpm, limits.tpm) == (30, 0)


def test_issuekey_refuses_negative_limits_before_making_a_key(alice) -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from accounts.models import ApiKey

    with pytest.raises(CommandError, match="--rpm"):
        call_command("issuekey", "alice", "--rpm", "-1")
    assert not ApiKey.objects.filter(user=alice).exists()
