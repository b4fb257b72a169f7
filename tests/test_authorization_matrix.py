"""Who may reach what: every route of the URLconf and of the proxy, tried by
every kind of caller.

The Django routes are read from the URLconf itself; each must match exactly
one row of RULES, so a new route without a row fails the suite until someone
says who may use it. Identities: anonymous, alice (owner of the objects in
the URLs), bob (another user), a staff account without permissions, a
superuser. The proxy's routes are tried with no key, a key as Bearer and as
x-api-key, a session cookie alone, a revoked key, an expired key and a key
limited to one model.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver
from django.utils import timezone

from accounts.models import User
from accounts.services import apikey_create, apikey_revoke
from apiproxy.app import JSON_ENDPOINTS
from chat.services import conversation_create
from chat.tests.conftest import session_cookies
from tests.factories import apikey_make, user_make
from tests.fixtures_proxy import ProxyRig

IDENTITIES = ("anonymous", "alice", "bob", "staff", "superuser")


def every(identities: tuple[str, ...], statuses: Any) -> dict[str, Any]:
    return {identity: frozenset(statuses) for identity in identities}


LOGIN = "login"  # a redirect to a login page
OK = {200}
OWNER_ONLY = {"alice": OK, "bob": {404}, "staff": {404}, "superuser": {404}}
SIGNED_IN = every(IDENTITIES[1:], OK)
STAFF_ONLY = {"alice": LOGIN, "bob": LOGIN, "staff": {403}, "superuser": OK}
API_ANONYMOUS = {401, 403}
ALLAUTH_SIGNED_IN = {200, 302}

# (route regex, expected status per identity; missing identities: anonymous
# must log in for pages, gets 401/403 for /api/). The first match wins.
RULES: list[tuple[str, dict[str, Any]]] = [
    (r"^(chat/)?$", SIGNED_IN),
    (r"^chat/<int:conversation_id>/$", OWNER_ONLY),
    (r"^api/conversations/$", {"anonymous": API_ANONYMOUS, **SIGNED_IN}),
    (r"^api/conversations/<int", {"anonymous": API_ANONYMOUS, **OWNER_ONLY}),
    (r"^api/keys/$", {"anonymous": API_ANONYMOUS, **SIGNED_IN}),
    (r"^api/keys/<int:key_id>/$", {"anonymous": API_ANONYMOUS, **OWNER_ONLY}),
    (
        r"^api/keys/<int:key_id>/(revoke|roll)/$",
        {
            "anonymous": API_ANONYMOUS,
            "alice": {405},
            "bob": {405},
            "staff": {405},
            "superuser": {405},
        },
    ),
    (r"^api/schema/$", {"anonymous": API_ANONYMOUS, **SIGNED_IN}),
    (r"^settings/account/keys/<int:key_id>/(revoke|roll)/$", OWNER_ONLY),
    (r"^settings/account/keys/$", every(IDENTITIES[1:], {200, 302, 405})),
    (r"^settings/account/time-zone/$", every(IDENTITIES[1:], {302, 405})),
    # A new key's one showing: with none waiting, back to the key list.
    (r"^settings/account/keys/new/$", every(IDENTITIES[1:], {302})),
    (r"^settings/(account|access|usage)/(export\.csv)?$", SIGNED_IN),
    # Settings > Projects: the list for everyone signed in; a project's pages
    # for its members only (no project 999999 exists: 404, staff included;
    # projects/tests/test_project_pages.py tries each role); its writes are
    # POST only; an unknown invitation token is 404.
    (r"^settings/projects/(request/)?$", SIGNED_IN),
    (
        r"^settings/projects/<int:project_id>/(export\.csv|report/|request/)?$",
        every(IDENTITIES[1:], {404}),
    ),
    (r"^settings/projects/<int:project_id>/.+/$", every(IDENTITIES[1:], {405})),
    (r"^projects/invitations/<str:token>/$", every(IDENTITIES[1:], {404})),
    (
        r"^accounts/(login|signup|password/reset|password/reset/done"
        r"|password/reset/key/done|inactive|confirm-email)/$",
        {"anonymous": OK, **every(IDENTITIES[1:], ALLAUTH_SIGNED_IN)},
    ),
    (r"^accounts/(logout|login/code/confirm)/$", every(IDENTITIES, {200, 302})),
    (
        r"^accounts/\^(confirm-email|password/reset/key)/",
        every(IDENTITIES, {200, 302, 404}),
    ),
    (
        r"^accounts/(reauthenticate|email|password/(change|set))/$",
        every(IDENTITIES[1:], ALLAUTH_SIGNED_IN),
    ),
    (
        r"^accounts/2fa/webauthn/login/$",
        every(IDENTITIES, {200, 302, 400, 405}),
    ),
    (r"^accounts/2fa/(authenticate)/$", every(IDENTITIES, {200, 302})),
    # Choose your institution: searching and starting a sign-in need no
    # account (starting is POST only); signing in again needs one.
    (r"^accounts/institutions/(search/)?$", every(IDENTITIES, OK)),
    (r"^accounts/institutions/start/$", every(IDENTITIES, {405})),
    (r"^accounts/institutions/reauthenticate/$", SIGNED_IN),
    # allauth's old /accounts/social/ addresses redirect to /accounts/3rdparty/.
    (r"^accounts/social/", every(IDENTITIES, {301})),
    (r"^accounts/3rdparty/login/cancelled/$", every(IDENTITIES, OK)),
    (r"^accounts/3rdparty/login/error/$", every(IDENTITIES, {401})),
    (r"^accounts/3rdparty/signup/$", every(IDENTITIES, {200, 302})),
    (r"^accounts/3rdparty/$", SIGNED_IN),
    # The protocol endpoints, tried for a provider that does not exist: the
    # ACS only stores the POST and redirects; everything else is not found.
    (r"^accounts/\^saml/[^ ]*/acs/$", every(IDENTITIES, {302})),
    (r"^accounts/(\^?saml|oidc)/", every(IDENTITIES, {404})),
    (r"^accounts/2fa/", every(IDENTITIES[1:], {200, 302, 404})),
    (
        r"^admin/login/$",
        {
            "anonymous": {200, 302},
            "alice": {302, 403},
            "bob": {302, 403},
            "staff": {200, 302},
            "superuser": {200, 302},
        },
    ),
    (r"^admin/logout/$", every(IDENTITIES, {200, 302, 405})),
    # Approve/Refuse on an access request's page: POST only, staff only.
    (
        r"^admin/catalog/accessrequest/<int:object_id>/decide/$",
        {"alice": LOGIN, "bob": LOGIN, "staff": {403}, "superuser": {405}},
    ),
    # Resend the sign-up's verification link: POST only, for a pending login.
    (r"^accounts/verification/resend/$", every(IDENTITIES, {405})),
    # Django's language switcher: sets the session's language, for anyone.
    (r"^i18n/setlang/$", every(IDENTITIES, {204, 302})),
    # The chat's translated strings (JavaScriptCatalog): public, like the
    # static files, since they hold nothing but the shipped catalogue.
    (r"^jsi18n/$", every(IDENTITIES, OK)),
    (r"^admin/$", {"alice": LOGIN, "bob": LOGIN, "staff": OK, "superuser": OK}),
    (
        r"^admin/(password_change|password_change/done|jsi18n)/$",
        {"alice": LOGIN, "bob": LOGIN, "staff": OK, "superuser": OK},
    ),
    (r"^admin/dashboard/$", STAFF_ONLY),
    (r"^admin/analytics/$", STAFF_ONLY),
    (r"^admin/autocomplete/$", {**STAFF_ONLY, "superuser": {403}}),
    (r"^admin/r/", {"alice": LOGIN, "bob": LOGIN, "staff": {404}, "superuser": {404}}),
    (r"^admin/\^\(\?P<app_label>", {**STAFF_ONLY, "staff": {403, 404}}),
    (
        r"^admin/\(\?P<url>",
        {"alice": LOGIN, "bob": LOGIN, "staff": {404}, "superuser": {404}},
    ),
    (r"^admin/[a-z_]+/[a-z_]+/$", STAFF_ONLY),
    (
        r"^admin/[a-z_]+/[a-z_]+/(add|export)/$",
        {**STAFF_ONLY, "superuser": {200, 403, 404}},
    ),
    # The bare object URL redirects to its change page (checked there).
    (
        r"^admin/[a-z_]+/[a-z_]+/<path:object_id>/$",
        {**STAFF_ONLY, "staff": {302}, "superuser": {302}},
    ),
    (
        r"^admin/[a-z_]+/[a-z_]+/<(path:object_id|id)>/",
        {**STAFF_ONLY, "superuser": {200, 302, 403, 404}},
    ),
]


def _routes(patterns: Any = None, prefix: str = "") -> Iterator[str]:
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern)


def _rule_for(route: str) -> dict[str, Any] | None:
    for regex, expected in RULES:
        if re.search(regex, route):
            return expected
    return None


def _url_of(route: str, ids: dict[str, int]) -> str:
    url = route.replace("^", "").replace("$", "")
    url = re.sub(r"\(\?P<app_label>[^)]*\)", "catalog", url)
    url = re.sub(r"\(\?P<url>[^)]*\)", "nothing/here/", url)
    url = re.sub(r"\(\?P<\w+>[^)]*\)", "x", url)
    url = re.sub(r"<int:(\w+)>", lambda m: str(ids.get(m.group(1), 999_999)), url)
    admin_model = re.match(r"admin/(\w+)/(\w+)/<", url)
    if admin_model:
        # An object that exists, so that "no permission" is told apart from
        # "no such object".
        pk = _first_pk(*admin_model.groups())
        url = re.sub(r"<(?:path:)?(object_id|id)>", str(pk), url)
    url = re.sub(r"<(?:path:|str:)?\w+>", "999999", url)
    return "/" + url


def _first_pk(app_label: str, model_name: str) -> int | str:
    from django.apps import apps

    model = apps.get_model(app_label, model_name)
    pk = model.objects.order_by("pk").values_list("pk", flat=True).first()
    return 999_999 if pk is None else pk


def _one_of_everything(alice: User) -> None:
    """A row in each table admin shows, for the object routes."""
    from django.apps import apps
    from django.contrib import admin

    from tests.factories import backend_make, model_make

    model_make(public_id="m", backend=backend_make())
    for model in admin.site._registry:
        if not model.objects.exists():
            missing = f"{model._meta.app_label}.{model.__name__}"
            assert apps.get_model(missing), missing


def test_every_route_has_a_row() -> None:
    missing = [route for route in _routes() if _rule_for(route) is None]
    assert missing == [], "routes nobody decided who may use: " + ", ".join(missing)


@pytest.fixture
def callers(db: None, alice: User, bob: User) -> dict[str, Client]:
    staff = user_make(username="staffer", is_staff=True)
    superuser = user_make(username="root", is_staff=True, is_superuser=True)
    clients = {"anonymous": Client()}
    for name, user in (
        ("alice", alice),
        ("bob", bob),
        ("staff", staff),
        ("superuser", superuser),
    ):
        clients[name] = Client()
        clients[name].force_login(user)
    return clients


def test_every_route_answers_each_caller_as_its_row_says(
    callers: dict[str, Client], alice: User, fast_password_hashing: None
) -> None:
    issued = apikey_make(user=alice)
    conversation = conversation_create(user=alice, model="m")
    _one_of_everything(alice)
    ids = {"key_id": issued.key.pk, "conversation_id": conversation.pk}
    wrong = []
    for route in _routes():
        expected = _rule_for(route)
        assert expected is not None
        url = _url_of(route, ids)
        for identity, client in callers.items():
            want = expected.get(identity)
            if want is None:
                want = API_ANONYMOUS if url.startswith("/api/") else LOGIN
            response = client.get(url)
            if want == LOGIN:
                ok = response.status_code == 302 and "login" in response["Location"]
            elif identity == "staff" and re.match(
                r"/admin/[a-z_]+/[a-z_]+/999999/", url
            ):
                # No row of that table to try: admin redirects staff away
                # from an object that does not exist, which tells nothing.
                ok = response.status_code in {302, 403}
            else:
                ok = response.status_code in want
            if not ok:
                wrong.append(f"{identity} GET {url} -> {response.status_code}")
    assert not wrong, "\n".join(wrong)


def test_nobody_but_the_owner_can_revoke_or_roll_a_key(
    callers: dict[str, Client], alice: User
) -> None:
    issued = apikey_make(user=alice)
    for identity in ("bob", "staff", "superuser"):
        for url in (
            f"/api/keys/{issued.key.pk}/revoke/",
            f"/api/keys/{issued.key.pk}/roll/",
            f"/settings/account/keys/{issued.key.pk}/revoke/",
        ):
            assert callers[identity].post(url).status_code == 404, (identity, url)
    for url in (f"/api/keys/{issued.key.pk}/revoke/",):
        assert callers["anonymous"].post(url).status_code in API_ANONYMOUS
    issued.key.refresh_from_db()
    assert issued.key.revoked_at is None


# --- the proxy ---------------------------------------------------------------

MESSAGES = [{"role": "user", "content": "hi"}]
PROXY_CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "models": ("GET", {}),
    "models/fake-chat": ("GET", {}),
    "chat/completions": (
        "POST",
        {"json": {"model": "fake-chat", "messages": MESSAGES}},
    ),
    "completions": ("POST", {"json": {"model": "fake-chat", "prompt": "hi"}}),
    "embeddings": ("POST", {"json": {"model": "fake-embed", "input": "hi"}}),
    "responses": ("POST", {"json": {"model": "fake-chat", "input": "hi"}}),
    "audio/transcriptions": (
        "POST",
        {"data": {"model": "whisper-fake"}, "files": {"file": ("a.wav", b"RIFF")}},
    ),
}


def test_every_proxy_route_has_a_row() -> None:
    routes = {*JSON_ENDPOINTS, "audio/transcriptions", "models", "models/fake-chat"}
    assert routes == set(PROXY_CALLS)


def _call(proxy: ProxyRig, endpoint: str, prefix: str, **headers: str) -> int:
    method, options = PROXY_CALLS[endpoint]
    with httpx.Client(base_url=proxy.server.url, timeout=20) as http:
        response = http.request(
            method, f"{prefix}{endpoint}", headers=headers, **options
        )
    body = response.json() if response.status_code >= 400 else None
    if body is not None:
        assert set(body["error"]) == {"message", "type", "param", "code"}
    return response.status_code


@pytest.mark.parametrize("prefix", ["/v1/", "/api/"])
def test_the_proxy_admits_only_good_keys_in_every_carrier(
    proxy: ProxyRig, prefix: str
) -> None:
    user = proxy.user
    revoked = apikey_make(user=user)
    apikey_revoke(key=revoked.key)
    expired = apikey_create(
        user=user, name="old", expires_at=timezone.now() + timedelta(seconds=1)
    )
    type(expired.key).objects.filter(pk=expired.key.pk).update(
        expires_at=timezone.now() - timedelta(days=1)
    )
    limited = apikey_create(user=user, name="embed", allowed_models=["fake-embed"])
    cookie = "; ".join(f"{k}={v}" for k, v in session_cookies(user).items())
    wrong = []
    for endpoint in PROXY_CALLS:
        got = {
            "none": _call(proxy, endpoint, prefix),
            "bearer": _call(
                proxy, endpoint, prefix, authorization=f"Bearer {proxy.key}"
            ),
            "x-api-key": _call(proxy, endpoint, prefix, **{"x-api-key": proxy.key}),
            "session": _call(proxy, endpoint, prefix, cookie=cookie),
            "revoked": _call(
                proxy, endpoint, prefix, authorization=f"Bearer {revoked.raw}"
            ),
            "expired": _call(
                proxy, endpoint, prefix, authorization=f"Bearer {expired.raw}"
            ),
            "limited": _call(
                proxy, endpoint, prefix, authorization=f"Bearer {limited.raw}"
            ),
        }
        good = 200
        want = {
            "none": 401,
            "bearer": good,
            "x-api-key": good,
            "session": 401,
            "revoked": 401,
            "expired": 401,
            # The key allows fake-embed only: everything else is "not found".
            "limited": good if endpoint in ("models", "embeddings") else 404,
        }
        if got != want:
            wrong.append(f"{prefix}{endpoint}: {got} != {want}")
    assert not wrong, "\n".join(wrong)
