"""Backend API keys at rest: Fernet ciphertext under a key derived from SECRET_KEY.

A database dump alone does not reveal the keys of the backends Portico talks to.
Rotating SECRET_KEY keeps old ciphertext readable as long as the previous value
is listed in SECRET_KEY_FALLBACKS (Django's own rotation setting); a key that no
secret can read comes back empty and is logged, so staff re-enter it in admin.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models
from django.utils.crypto import salted_hmac

logger = logging.getLogger(__name__)

_SALT = "portico.apiproxy.backend-api-key"


def _fernet() -> MultiFernet:
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    keys = [
        base64.urlsafe_b64encode(
            salted_hmac(_SALT, "fernet", secret=secret, algorithm="sha256").digest()
        )
        for secret in secrets
    ]
    return MultiFernet([Fernet(key) for key in keys])


def secret_encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def secret_decrypt(token: str) -> str | None:
    """The plaintext, or None when neither SECRET_KEY nor a fallback can read it."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        return None


class EncryptedTextField(models.TextField):
    """Plaintext in Python, Fernet ciphertext in the database; '' stays ''.

    Lookups by value are meaningless (each encryption differs), which suits a
    secret that is only ever read back for an outgoing Authorization header.
    """

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if not value:
            return value
        plaintext = secret_decrypt(value)
        if plaintext is None:
            logger.error(
                "A stored %s cannot be decrypted (SECRET_KEY changed without "
                "SECRET_KEY_FALLBACKS?); re-enter it in admin",
                self.verbose_name,
            )
            return ""
        return plaintext

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if not value:
            return value
        return secret_encrypt(value)
