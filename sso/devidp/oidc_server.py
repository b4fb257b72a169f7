"""authlib glue for the development OpenID Connect provider.

`DevAuthorizationServer` is a framework integration of authlib's
`AuthorizationServer` for the small request/response types below (the HTTP
layer in `oidc_http` fills them from `http.server`). It registers the
authorization code grant with PKCE (S256 only, required) and OpenID Connect
(`OpenIDCode`), and authlib's `UserInfoEndpoint`.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authlib.common.encoding import json_dumps
from authlib.common.security import generate_token
from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeGrant,
    AuthorizationServer,
    InvalidRequestError,
    OAuth2Payload,
    OAuth2Request,
    ResourceProtector,
)
from authlib.oauth2.rfc6750 import (
    BearerTokenGenerator,
    BearerTokenValidator,
    InvalidTokenError,
)
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge
from authlib.oidc.core import UserInfo, UserInfoEndpoint
from authlib.oidc.core.grants import OpenIDCode
from joserfc.jwk import KeySet, RSAKey

from .oidc_store import (
    ACCESS_TOKEN_LIFETIME_S,
    AuthorizationCode,
    Client,
    Store,
    Token,
    User,
)

ID_TOKEN_LIFETIME_S = 300
#: Claims the provider sets itself; a user's claims never override them.
RESERVED_CLAIMS = frozenset(
    {"iss", "aud", "exp", "iat", "nbf", "jti", "nonce", "auth_time", "at_hash", "azp"}
)


@dataclass
class HttpRequest:
    """What the HTTP layer hands to authlib: one parsed request."""

    method: str
    url: str
    path: str
    headers: Mapping[str, str]
    query: dict[str, list[str]] = field(default_factory=dict)
    form: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class _Payload(OAuth2Payload):
    """Query and form parameters together, the form winning (as Django's
    integration does)."""

    def __init__(self, query: dict[str, list[str]], form: dict[str, list[str]]):
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for source in (query, form):
            for key, values in source.items():
                self._datalist[key].extend(values)
        self._data = {k: v[-1] for k, v in query.items() if v}
        self._data.update({k: v[-1] for k, v in form.items() if v})

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class DevOAuth2Request(OAuth2Request):
    def __init__(self, http: HttpRequest) -> None:
        super().__init__(method=http.method, uri=http.url, headers=http.headers)
        self.payload = _Payload(http.query, http.form)
        self.http = http
        #: set by the login view: the misbehaviour this login consumed
        self.misbehave = "none"

    @property
    def args(self) -> dict[str, str]:
        return {k: v[-1] for k, v in self.http.query.items() if v}

    @property
    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in self.http.form.items() if v}


@dataclass
class SigningKeys:
    """The RS256 key served at jwks_uri, and a rogue key with the same kid
    for `bad_signature` (an RP that looks the kid up finds the real key, and
    the signature does not verify)."""

    key: RSAKey
    rogue: RSAKey

    @classmethod
    def generate(cls) -> SigningKeys:
        params = {"kid": f"devidp-{secrets.token_hex(6)}", "use": "sig", "alg": "RS256"}
        return cls(
            key=RSAKey.generate_key(2048, parameters=dict(params)),
            rogue=RSAKey.generate_key(2048, parameters=dict(params)),
        )

    @property
    def kid(self) -> str:
        return str(self.key.kid)

    def jwks(self) -> dict[str, Any]:
        return dict(KeySet([self.key]).as_dict(private=False))

    def for_mode(self, mode: str) -> KeySet:
        # A KeySet (not a bare key) makes joserfc write "kid" into the header.
        return KeySet([self.rogue if mode == "bad_signature" else self.key])


def user_claims(user: User) -> UserInfo:
    claims = {k: v for k, v in user.claims.items() if k not in RESERVED_CLAIMS}
    claims["sub"] = user.sub
    return UserInfo(claims)


class S256CodeChallenge(CodeChallenge):
    """PKCE, required on every authorization request, S256 only."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    CODE_CHALLENGE_METHODS = {"S256": compare_s256_code_challenge}

    def validate_code_challenge(self, grant, redirect_uri) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only 'code_challenge_method=S256' is supported.")
        super().validate_code_challenge(grant, redirect_uri)


class DevCodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    @property
    def store(self) -> Store:
        return self.server.store

    def save_authorization_code(self, code: str, request: DevOAuth2Request) -> None:
        data = request.payload.data
        self.store.save_code(
            AuthorizationCode(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri or "",
                scope=request.scope or "",
                username=request.user.username,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                auth_time=int(time.time()),
                misbehave=getattr(request, "misbehave", "none"),
            )
        )

    def query_authorization_code(self, code: str, client: Client):
        return self.store.take_code(code, client.client_id)

    def delete_authorization_code(self, authorization_code) -> None:
        """Nothing to do: `query_authorization_code` already took it."""

    def authenticate_user(self, authorization_code: AuthorizationCode):
        return self.store.user(authorization_code.username)


class DevOpenIDCode(OpenIDCode):
    """Signs ID tokens; applies the misbehaviour a code carries."""

    def __init__(self, issuer: str, keys: SigningKeys, store: Store) -> None:
        super().__init__(require_nonce=False)
        self.issuer = issuer
        self.keys = keys
        self.store = store
        # This extension instance is shared by every request thread.
        self._minting = threading.local()

    def _mode(self) -> str:
        return getattr(self._minting, "mode", "none")

    def encode_id_token(self, token, request) -> str:
        code = request.authorization_code
        self._minting.mode = code.misbehave if code is not None else "none"
        try:
            return super().encode_id_token(token, request)
        finally:
            self._minting.mode = "none"

    def exists_nonce(self, nonce: str, request) -> bool:
        return self.store.nonce_in_use(request.payload.client_id, nonce)

    def resolve_client_private_key(self, client) -> KeySet:
        return self.keys.for_mode(self._mode())

    def get_client_algorithm(self, client) -> str:
        return "RS256"

    def get_client_claims(self, client) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": client.client_id,
            "iat": now,
            "exp": now + ID_TOKEN_LIFETIME_S,
        }
        mode = self._mode()
        if mode == "expired":
            claims.update(iat=now - 2 * ID_TOKEN_LIFETIME_S, exp=now - 600)
        elif mode == "wrong_audience":
            claims["aud"] = f"not-{client.client_id}"
        return claims

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return user_claims(user)


class StoreBearerTokenValidator(BearerTokenValidator):
    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    def authenticate_token(self, token_string: str) -> Token | None:
        return self.store.token(token_string)


class DevUserInfoEndpoint(UserInfoEndpoint):
    """authlib's `UserInfoEndpoint.__call__` asks the resource protector for
    the token without the request (Flask's context-local style); this one
    validates the request it is given."""

    def __call__(self, request: DevOAuth2Request):
        token = self.resource_protector.validate_request(["openid"], request)
        user = token.get_user()
        if user is None:
            raise InvalidTokenError()
        return 200, self.generate_user_info(user, token.scope), default_json_headers

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return user_claims(user)

    def get_issuer(self) -> str:
        return self.server.issuer


def _opaque_token(**_kwargs: Any) -> str:
    return generate_token(42)


class DevAuthorizationServer(AuthorizationServer):
    def __init__(self, store: Store, issuer: str, keys: SigningKeys) -> None:
        super().__init__(scopes_supported=None)
        self.store = store
        self.issuer = issuer
        self.keys = keys
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=_opaque_token,
                expires_generator=ACCESS_TOKEN_LIFETIME_S,
            ),
        )
        self.register_grant(
            DevCodeGrant,
            [S256CodeChallenge(required=True), DevOpenIDCode(issuer, keys, store)],
        )
        protector = ResourceProtector()
        protector.register_token_validator(StoreBearerTokenValidator(store))
        self.register_endpoint(DevUserInfoEndpoint(resource_protector=protector))

    def query_client(self, client_id: str) -> Client | None:
        return self.store.client(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.store.save_token(
            Token(
                access_token=token["access_token"],
                client_id=request.client.client_id,
                username=request.user.username,
                scope=token.get("scope", ""),
                expires_in=int(token.get("expires_in", ACCESS_TOKEN_LIFETIME_S)),
            )
        )

    def create_oauth2_request(self, request) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return DevOAuth2Request(request)

    def create_json_request(self, request):
        raise NotImplementedError("no JSON endpoints are registered")

    def handle_response(self, status, body, headers) -> HttpResponse:
        if isinstance(body, dict):
            body = json_dumps(body)
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body or b"")
        return HttpResponse(status=status, body=data, headers=list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal system here."""
