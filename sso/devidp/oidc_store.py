"""In-memory state of the development OpenID Connect provider: registered
clients, users, authorization codes, access tokens and the pending misbehaviour.

Everything lives in one `Store` guarded by one lock; the HTTP server is
threaded. Nothing here is persisted: a restart forgets every code and token.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin
from authlib.oidc.core import AuthorizationCodeMixin

#: Values of `POST /_control/misbehave`; "none" resets.
MISBEHAVE_MODES = frozenset(
    {"none", "expired", "wrong_nonce", "wrong_audience", "bad_signature", "wrong_state"}
)
CODE_LIFETIME_S = 600
ACCESS_TOKEN_LIFETIME_S = 3600


@dataclass
class Client(ClientMixin):
    """A confidential client (relying party) registered on the command line."""

    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)
    #: read by authlib's UserInfoEndpoint (userinfo_signed_response_alg)
    client_metadata: dict[str, Any] = field(default_factory=dict)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # With several URIs registered, the request must name one.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(
            self.client_secret.encode(), client_secret.encode()
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_post", "client_secret_basic")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class User:
    username: str
    password: str
    claims: dict[str, Any]

    @property
    def sub(self) -> str:
        return str(self.claims.get("sub") or self.username)


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    username: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int
    #: the misbehaviour consumed by the login that issued this code
    misbehave: str = "none"
    expires_at: float = field(default_factory=lambda: time.time() + CODE_LIFETIME_S)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        if self.misbehave == "wrong_nonce":
            return f"not-{self.nonce or 'requested'}-{secrets.token_hex(4)}"
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time


@dataclass
class Token(TokenMixin):
    access_token: str
    client_id: str
    username: str
    scope: str
    expires_in: int
    issued_at: float = field(default_factory=time.time)
    store: Store | None = field(default=None, repr=False)

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return False

    def get_client(self) -> Client | None:
        return self.store.client(self.client_id) if self.store else None

    def get_user(self) -> User | None:
        return self.store.user(self.username) if self.store else None


class Store:
    def __init__(self, clients: Iterable[Client], users: Iterable[User]) -> None:
        self._lock = threading.Lock()
        self._clients = {client.client_id: client for client in clients}
        self._users = {user.username: user for user in users}
        self._codes: dict[str, AuthorizationCode] = {}
        self._tokens: dict[str, Token] = {}
        self._misbehave = "none"

    def client(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def user(self, username: str) -> User | None:
        with self._lock:
            return self._users.get(username)

    def check_password(self, username: str, password: str) -> User | None:
        user = self.user(username)
        if user is None:
            # Compare anyway, so a missing user costs the same as a wrong password.
            secrets.compare_digest(password.encode(), password.encode())
            return None
        if secrets.compare_digest(user.password.encode(), password.encode()):
            return user
        return None

    def put_user(
        self, username: str, claims: Mapping[str, Any], password: str | None
    ) -> bool:
        """Replace a user's claims (and password, if given). Creates the user
        only when a password is given; returns whether the user exists now."""
        with self._lock:
            current = self._users.get(username)
            if current is None and password is None:
                return False
            self._users[username] = User(
                username=username,
                password=password if password is not None else current.password,
                claims={"sub": username, **claims},
            )
            return True

    def save_code(self, code: AuthorizationCode) -> None:
        with self._lock:
            now = time.time()
            for stale in [k for k, v in self._codes.items() if v.expires_at < now]:
                del self._codes[stale]
            self._codes[code.code] = code

    def take_code(self, code: str, client_id: str) -> AuthorizationCode | None:
        """Remove and return a live code issued to `client_id`. A code is taken
        on its first presentation, so a failed exchange burns it too."""
        with self._lock:
            item = self._codes.get(code)
            if item is None or item.client_id != client_id:
                return None
            del self._codes[code]
        return item if item.expires_at >= time.time() else None

    def nonce_in_use(self, client_id: str, nonce: str) -> bool:
        with self._lock:
            return any(
                c.client_id == client_id and c.nonce == nonce
                for c in self._codes.values()
            )

    def save_token(self, token: Token) -> None:
        token.store = self
        with self._lock:
            for stale in [k for k, v in self._tokens.items() if v.is_expired()]:
                del self._tokens[stale]
            self._tokens[token.access_token] = token

    def token(self, access_token: str) -> Token | None:
        with self._lock:
            return self._tokens.get(access_token)

    def set_misbehave(self, mode: str) -> None:
        if mode not in MISBEHAVE_MODES:
            raise ValueError(f"unknown misbehave mode {mode!r}")
        with self._lock:
            self._misbehave = mode

    def take_misbehave(self) -> str:
        with self._lock:
            mode, self._misbehave = self._misbehave, "none"
        return mode


def parse_client_arg(value: str) -> Client:
    """`CLIENT_ID:SECRET:REDIRECT_URI`; the URI may contain colons, the id and
    the secret may not."""
    parts = value.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"--client wants CLIENT_ID:SECRET:REDIRECT_URI, got {value!r}")
    client_id, secret, redirect_uri = parts
    return Client(
        client_id=client_id, client_secret=secret, redirect_uris=[redirect_uri]
    )


def merge_clients(clients: Iterable[Client]) -> list[Client]:
    """Join repeated `--client` entries for one id into one client with every
    redirect URI; the secrets must agree."""
    merged: dict[str, Client] = {}
    for client in clients:
        known = merged.get(client.client_id)
        if known is None:
            merged[client.client_id] = Client(
                client.client_id, client.client_secret, list(client.redirect_uris)
            )
            continue
        if known.client_secret != client.client_secret:
            raise ValueError(f"client {client.client_id!r} given two secrets")
        known.redirect_uris.extend(
            uri for uri in client.redirect_uris if uri not in known.redirect_uris
        )
    return list(merged.values())


def users_from_mapping(data: Mapping[str, Any]) -> list[User]:
    users = []
    for username, entry in data.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("password"), str):
            raise ValueError(f"user {username!r} needs a string password")
        claims = dict(entry.get("claims") or {})
        claims.setdefault("sub", username)
        users.append(User(username=username, password=entry["password"], claims=claims))
    return users


def load_users(path: Path) -> list[User]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: the users file holds a JSON object")
    return users_from_mapping(data)
