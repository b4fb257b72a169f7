"""The development OpenID Connect provider, driven as a real subprocess over
HTTP the way django-allauth's `openid_connect` provider drives it."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidClaimError
from joserfc.jwk import KeySet

from sso.devidp.oidc import OIDCClient, oidc_provider_running

CLIENT_ID = "portico-test"
CLIENT_SECRET = "client-secret-9f2c7a"
REDIRECT = "http://127.0.0.1:9/accounts/oidc/test/login/callback/"
OTHER_REDIRECT = "http://localhost:9/accounts/oidc/test/login/callback/"
ALICE_PASSWORD = "alice-password-4711"
BOB_PASSWORD = "bob-password-0815"
USERS: dict[str, Any] = {
    "alice": {
        "password": ALICE_PASSWORD,
        "claims": {
            "sub": "alice-0001",
            "email": "alice@test-university.example",
            "email_verified": True,
            "name": "Alice Liddell",
            "given_name": "Alice",
            "family_name": "Liddell",
            "groups": ["staff", "ml-lab"],
            "eduPersonAffiliation": ["staff"],
        },
    },
    "bob": {"password": BOB_PASSWORD, "claims": {"email": "bob@example.org"}},
}
PASSWORDS = [ALICE_PASSWORD, BOB_PASSWORD, CLIENT_SECRET]


@dataclass
class Flow:
    """One authorization request, with its PKCE pair, state and nonce."""

    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    state: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    redirect_uri: str = REDIRECT

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def params(self, **overrides: str | None) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": self.redirect_uri,
            "scope": "openid profile email",
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
        }
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}


@dataclass
class Harness:
    issuer: str
    provider: Any
    http: httpx.Client
    log_path: Path
    seen: set[str] = field(default_factory=set)

    def authorize(self, flow: Flow, **overrides: str | None) -> httpx.Response:
        return self.http.get(
            f"{self.issuer}/authorize", params=flow.params(**overrides)
        )

    def login(
        self, flow: Flow, username: str = "alice", password: str = ALICE_PASSWORD
    ) -> httpx.Response:
        return self.http.post(
            f"{self.issuer}/authorize",
            params=flow.params(),
            data={"username": username, "password": password},
        )

    def sign_in(self, flow: Flow, username: str = "alice") -> dict[str, str]:
        password = USERS.get(username, {}).get("password", f"{username}-password")
        response = self.login(flow, username, password)
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith(flow.redirect_uri + "?")
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        self.seen.add(query["code"])
        return query

    def exchange(
        self, code: str, verifier: str | None, *, basic: bool = False, **extra: str
    ) -> httpx.Response:
        data = {"grant_type": "authorization_code", "code": code}
        data["redirect_uri"] = extra.pop("redirect_uri", REDIRECT)
        if verifier is not None:
            data["code_verifier"] = verifier
        auth = None
        if basic:
            auth = (CLIENT_ID, extra.pop("secret", CLIENT_SECRET))
        else:
            data["client_id"] = CLIENT_ID
            data["client_secret"] = extra.pop("secret", CLIENT_SECRET)
        response = self.http.post(f"{self.issuer}/token", data=data, auth=auth)
        if response.status_code == 200:
            body = response.json()
            self.seen.update([body["access_token"], body["id_token"]])
        return response

    def tokens(self, username: str = "alice", flow: Flow | None = None) -> dict:
        flow = flow or Flow()
        query = self.sign_in(flow, username)
        response = self.exchange(query["code"], flow.verifier)
        assert response.status_code == 200, response.text
        return response.json()

    def keys(self) -> KeySet:
        return KeySet.import_key_set(self.http.get(f"{self.issuer}/jwks").json())

    def decode(self, id_token: str) -> jwt.Token:
        """Verify the signature with the JWKS; claims are checked by callers."""
        return jwt.decode(id_token, self.keys(), algorithms=["RS256"])

    def claims_registry(self, nonce: str) -> jwt.JWTClaimsRegistry:
        return jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": CLIENT_ID},
            sub={"essential": True},
            nonce={"essential": True, "value": nonce},
        )


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    log_path = tmp_path_factory.mktemp("devidp") / "oidc.log"
    clients = [
        OIDCClient(CLIENT_ID, CLIENT_SECRET, [REDIRECT, OTHER_REDIRECT]),
        OIDCClient("other-rp", "other-secret", ["http://127.0.0.1:9/other"]),
    ]
    with (
        log_path.open("w") as log,
        oidc_provider_running(
            name="Test University", clients=clients, users=USERS, stderr=log
        ) as provider,
        httpx.Client(trust_env=False, timeout=10) as http,
    ):
        yield Harness(provider.issuer, provider, http, log_path)


@pytest.fixture(autouse=True)
def _reset_misbehaviour(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "idp" in request.fixturenames:
        request.getfixturevalue("idp").provider.misbehave("none")


def test_discovery_document(idp: Harness) -> None:
    doc = idp.http.get(f"{idp.issuer}/.well-known/openid-configuration").json()
    assert idp.issuer.startswith("http://127.0.0.1:")
    assert doc["issuer"] == idp.issuer
    for key, path in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
    ]:
        assert doc[key] == idp.issuer + path
    assert doc["response_types_supported"] == ["code"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_post",
        "client_secret_basic",
    }
    assert "public" in doc["subject_types_supported"]
    assert {"openid", "profile", "email"} <= set(doc["scopes_supported"])
    assert {"sub", "email", "groups"} <= set(doc["claims_supported"])


def test_jwks_serves_one_public_rs256_key(idp: Harness) -> None:
    (key,) = idp.http.get(f"{idp.issuer}/jwks").json()["keys"]
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["kid"]
    assert "d" not in key


def test_authorize_shows_sign_in_form(idp: Harness) -> None:
    response = idp.authorize(Flow())
    assert response.status_code == 200
    page = response.text
    assert "<title>Test University</title>" in page
    assert '<input id="username"' in page
    assert '<input id="password" name="password" type="password"' in page
    assert '<button id="sign-in"' in page
    assert 'id="error"' not in page


def test_full_code_flow_with_pkce(idp: Harness) -> None:
    flow = Flow()
    query = idp.sign_in(flow)
    assert query["state"] == flow.state
    response = idp.exchange(query["code"], flow.verifier)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert "refresh_token" not in body

    token = idp.decode(body["id_token"])
    assert token.header["alg"] == "RS256"
    assert token.header["kid"] == idp.keys().keys[0].kid
    idp.claims_registry(flow.nonce).validate(token.claims)
    claims = token.claims
    assert claims["sub"] == "alice-0001"
    assert claims["exp"] - claims["iat"] == 300
    assert abs(claims["iat"] - time.time()) < 30
    expected = USERS["alice"]["claims"]
    for name in ["email", "email_verified", "name", "given_name", "family_name"]:
        assert claims[name] == expected[name]
    assert claims["groups"] == ["staff", "ml-lab"]
    assert claims["eduPersonAffiliation"] == ["staff"]

    userinfo = idp.http.get(
        f"{idp.issuer}/userinfo",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert userinfo.status_code == 200
    assert userinfo.json() == expected


def test_client_secret_basic_and_second_redirect_uri(idp: Harness) -> None:
    flow = Flow(redirect_uri=OTHER_REDIRECT)
    query = idp.sign_in(flow)
    response = idp.exchange(
        query["code"], flow.verifier, basic=True, redirect_uri=OTHER_REDIRECT
    )
    assert response.status_code == 200, response.text


def test_wrong_client_secret_is_refused(idp: Harness) -> None:
    flow = Flow()
    query = idp.sign_in(flow)
    response = idp.exchange(query["code"], flow.verifier, secret="nope")
    assert response.status_code in (400, 401)
    assert response.json()["error"] == "invalid_client"


def test_sub_defaults_to_username(idp: Harness) -> None:
    flow = Flow()
    claims = idp.decode(idp.tokens("bob", flow)["id_token"]).claims
    assert claims["sub"] == "bob"
    assert claims["email"] == "bob@example.org"


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge_method": None},
        {"code_challenge_method": "plain"},
    ],
    ids=["no-pkce", "no-method", "plain"],
)
def test_authorization_without_s256_pkce_is_refused(
    idp: Harness, overrides: dict[str, None]
) -> None:
    flow = Flow()
    response = idp.authorize(flow, **overrides)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == ["invalid_request"]
    assert query["state"] == [flow.state]
    assert "code" not in query


@pytest.mark.parametrize("verifier", [None, "x" * 43], ids=["missing", "wrong"])
def test_token_exchange_checks_the_verifier(idp: Harness, verifier: str | None) -> None:
    flow = Flow()
    query = idp.sign_in(flow)
    response = idp.exchange(query["code"], verifier)
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_request", "invalid_grant")
    # The failed exchange burnt the code.
    retry = idp.exchange(query["code"], flow.verifier)
    assert retry.status_code == 400


def test_code_is_single_use(idp: Harness) -> None:
    flow = Flow()
    query = idp.sign_in(flow)
    assert idp.exchange(query["code"], flow.verifier).status_code == 200
    again = idp.exchange(query["code"], flow.verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_token_exchange_needs_the_same_redirect_uri(idp: Harness) -> None:
    flow = Flow()
    query = idp.sign_in(flow)
    response = idp.exchange(query["code"], flow.verifier, redirect_uri=OTHER_REDIRECT)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "not-her-password"), ("mallory", "whatever")],
    ids=["wrong-password", "unknown-user"],
)
def test_bad_credentials_reshow_the_form(
    idp: Harness, username: str, password: str
) -> None:
    response = idp.login(Flow(), username, password)
    assert response.status_code == 200
    assert "location" not in response.headers
    assert 'id="error"' in response.text
    assert '<input id="password"' in response.text


def test_unregistered_redirect_uri_is_not_redirected_to(idp: Harness) -> None:
    flow = Flow(redirect_uri="http://127.0.0.1:9/evil")
    response = idp.authorize(flow)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.json()["error"] == "invalid_request"
    login = idp.login(flow)
    assert login.status_code == 400


def test_userinfo_needs_a_valid_token(idp: Harness) -> None:
    url = f"{idp.issuer}/userinfo"
    assert idp.http.get(url).status_code == 401
    bad = idp.http.get(url, headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401


def test_misbehave_expired(idp: Harness) -> None:
    idp.provider.misbehave("expired")
    flow = Flow()
    token = idp.decode(idp.tokens(flow=flow)["id_token"])
    assert token.claims["exp"] < time.time()
    with pytest.raises(ExpiredTokenError):
        idp.claims_registry(flow.nonce).validate(token.claims)


def test_misbehave_wrong_nonce(idp: Harness) -> None:
    idp.provider.misbehave("wrong_nonce")
    flow = Flow()
    token = idp.decode(idp.tokens(flow=flow)["id_token"])
    assert token.claims["nonce"] != flow.nonce
    with pytest.raises(InvalidClaimError):
        idp.claims_registry(flow.nonce).validate(token.claims)


def test_misbehave_wrong_audience(idp: Harness) -> None:
    idp.provider.misbehave("wrong_audience")
    flow = Flow()
    token = idp.decode(idp.tokens(flow=flow)["id_token"])
    assert token.claims["aud"] != CLIENT_ID
    with pytest.raises(InvalidClaimError):
        idp.claims_registry(flow.nonce).validate(token.claims)


def test_misbehave_bad_signature(idp: Harness) -> None:
    idp.provider.misbehave("bad_signature")
    id_token = idp.tokens()["id_token"]
    header = jws.extract_compact(id_token.encode()).headers()
    assert header["kid"] == idp.keys().keys[0].kid
    with pytest.raises(BadSignatureError):
        idp.decode(id_token)


def test_misbehave_wrong_state(idp: Harness) -> None:
    idp.provider.misbehave("wrong_state")
    flow = Flow()
    query = idp.sign_in(flow)
    assert query["state"] != flow.state
    # Only the redirect misbehaves; the code itself is good.
    response = idp.exchange(query["code"], flow.verifier)
    idp.claims_registry(flow.nonce).validate(
        idp.decode(response.json()["id_token"]).claims
    )


def test_misbehaviour_lasts_one_login_and_none_resets(idp: Harness) -> None:
    idp.provider.misbehave("wrong_audience")
    assert idp.decode(idp.tokens()["id_token"]).claims["aud"] != CLIENT_ID
    assert idp.decode(idp.tokens()["id_token"]).claims["aud"] == CLIENT_ID
    idp.provider.misbehave("expired")
    idp.provider.misbehave("none")
    flow = Flow()
    token = idp.decode(idp.tokens(flow=flow)["id_token"])
    idp.claims_registry(flow.nonce).validate(token.claims)


def test_misbehave_rejects_unknown_mode(idp: Harness) -> None:
    with pytest.raises(httpx.HTTPStatusError) as caught:
        idp.provider.misbehave("explode")
    assert caught.value.response.status_code == 400


def test_control_replaces_claims(idp: Harness) -> None:
    original = USERS["alice"]["claims"]
    changed = {**original, "groups": ["students"], "name": "Alice L."}
    idp.provider.set_user("alice", changed)
    try:
        body = idp.tokens()
        claims = idp.decode(body["id_token"]).claims
        assert claims["groups"] == ["students"]
        assert claims["name"] == "Alice L."
        userinfo = idp.http.get(
            f"{idp.issuer}/userinfo",
            headers={"Authorization": f"Bearer {body['access_token']}"},
        ).json()
        assert userinfo["groups"] == ["students"]
    finally:
        idp.provider.set_user("alice", original)
    assert idp.decode(idp.tokens()["id_token"]).claims["groups"] == ["staff", "ml-lab"]


def test_control_creates_user_only_with_password(idp: Harness) -> None:
    with pytest.raises(httpx.HTTPStatusError) as caught:
        idp.provider.set_user("carol", {"email": "carol@example.org"})
    assert caught.value.response.status_code == 404
    idp.provider.set_user(
        "carol", {"email": "carol@example.org"}, password="carol-password"
    )
    claims = idp.decode(idp.tokens("carol")["id_token"]).claims
    assert claims["sub"] == "carol"
    assert claims["email"] == "carol@example.org"


def test_control_health_and_content_type(idp: Harness) -> None:
    assert idp.http.get(f"{idp.issuer}/_control/health").status_code == 200
    plain = idp.http.post(
        f"{idp.issuer}/_control/misbehave", content=b'{"mode": "expired"}'
    )
    assert plain.status_code == 415


def test_control_is_off_without_the_flag() -> None:
    clients = [OIDCClient("rp", "rp-secret", ["http://127.0.0.1:9/cb"])]
    with (
        oidc_provider_running(
            name="Closed University", clients=clients, users={}, control=False
        ) as provider,
        httpx.Client(trust_env=False) as http,
    ):
        assert http.get(f"{provider.issuer}/_control/health").status_code == 404
        response = http.post(
            f"{provider.issuer}/_control/misbehave", json={"mode": "expired"}
        )
        assert response.status_code == 404
        assert provider.stop() == 0  # SIGTERM is a clean stop


def test_log_keeps_secrets_out(idp: Harness) -> None:
    idp.tokens()
    idp.login(Flow(), "alice", "a-wrong-password-typed")
    idp.http.get(f"{idp.issuer}/_control/health")  # a request after the others
    log = idp.log_path.read_text()
    assert "POST /token 200" in log
    leaked = [s for s in [*PASSWORDS, "a-wrong-password-typed", *idp.seen] if s in log]
    assert not leaked
