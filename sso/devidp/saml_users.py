"""The dev SAML IdP's accounts: a JSON file read at start-up, changed at run time
through the control endpoints. Passwords stay in memory and never reach a log."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class UserDataError(ValueError):
    """A users file or a control payload that is not the documented shape."""


def persistent_id(username: str) -> str:
    """The default NameID: opaque, stable across restarts, one per user."""
    digest = hashlib.sha256(f"portico-devidp-saml!{username}".encode()).hexdigest()
    return digest[:40]


def normalize_attributes(raw: Any) -> dict[str, list[str]]:
    """{"name": "v" | ["v", ...]} -> {"name": ["v", ...]}."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserDataError("attributes must be an object")
    result: dict[str, list[str]] = {}
    for name, values in raw.items():
        if not isinstance(name, str) or not name:
            raise UserDataError("attribute names must be non-empty strings")
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise UserDataError(f"attribute {name!r} must be a string or strings")
        result[name] = list(values)
    return result


@dataclass
class User:
    username: str
    password: str = field(repr=False)
    name_id: str
    attributes: dict[str, list[str]]

    @classmethod
    def from_json(cls, username: str, data: Any) -> User:
        if not isinstance(data, dict) or not isinstance(data.get("password"), str):
            raise UserDataError(f"user {username!r} needs a string password")
        name_id = data.get("name_id") or persistent_id(username)
        if not isinstance(name_id, str):
            raise UserDataError(f"user {username!r}: name_id must be a string")
        attributes = normalize_attributes(data.get("attributes"))
        return cls(username, data["password"], name_id, attributes)

    def password_matches(self, password: str) -> bool:
        return hmac.compare_digest(self.password.encode(), password.encode())


class UserStore:
    """Thread-safe accounts by username."""

    def __init__(self, users: dict[str, User]) -> None:
        self._users = users
        self._lock = threading.Lock()

    @classmethod
    def from_mapping(cls, data: Any) -> UserStore:
        if not isinstance(data, dict):
            raise UserDataError("the users file must hold an object")
        users = {name: User.from_json(name, info) for name, info in data.items()}
        return cls(users)

    @classmethod
    def from_file(cls, path: Path) -> UserStore:
        return cls.from_mapping(json.loads(path.read_text(encoding="utf-8")))

    def authenticate(self, username: str, password: str) -> User | None:
        with self._lock:
            user = self._users.get(username)
        if user is None or not user.password_matches(password):
            return None
        return user

    def get(self, username: str) -> User | None:
        with self._lock:
            return self._users.get(username)

    def update(self, username: str, payload: Any) -> tuple[User, bool]:
        """Replace a user's attributes; create the user when a password is
        given for an unknown name. Returns (user, created)."""
        if not isinstance(payload, dict):
            raise UserDataError("payload must be an object")
        with self._lock:
            current = self._users.get(username)
            if current is None:
                if "password" not in payload:
                    raise KeyError(username)
                user = User.from_json(username, payload)
                self._users[username] = user
                return user, True
            if "attributes" in payload:
                current.attributes = normalize_attributes(payload["attributes"])
            if isinstance(payload.get("password"), str):
                current.password = payload["password"]
            if isinstance(payload.get("name_id"), str) and payload["name_id"]:
                current.name_id = payload["name_id"]
            return current, False

    def scopes(self) -> list[str]:
        """Security domains of the users' scoped attributes (for shibmd:Scope)."""
        scoped = ("eduPersonPrincipalName", "eduPersonScopedAffiliation")
        found: set[str] = set()
        with self._lock:
            for user in self._users.values():
                for name in scoped:
                    for value in user.attributes.get(name, []):
                        if "@" in value:
                            found.add(value.rsplit("@", 1)[1].lower())
        return sorted(found)
