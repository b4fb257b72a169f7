"""The dev SAML IdP's signing key: a fresh RSA key and a self-signed certificate
per process, written as PEM files into the process's temporary directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sso.devidp.aggregate import test_signing_pair


@dataclass(frozen=True)
class SigningPair:
    key_file: Path
    cert_file: Path
    certificate_pem: str


def generate_signing_pair(directory: Path, common_name: str) -> SigningPair:
    """RSA-2048 key and a self-signed SHA-256 certificate (aggregate's
    `test_signing_pair`, the one place that makes them), as PEM files."""
    key_pem, certificate_pem = test_signing_pair(common_name=common_name)
    key_file = directory / "signing.key"
    cert_file = directory / "signing.crt"
    key_file.write_bytes(key_pem)
    key_file.chmod(0o600)
    cert_file.write_bytes(certificate_pem)
    return SigningPair(key_file, cert_file, certificate_pem.decode())
