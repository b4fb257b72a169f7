"""The dev SAML IdP's signing key: a fresh RSA key and a self-signed certificate
per process, written as PEM files into the process's temporary directory."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class SigningPair:
    key_file: Path
    cert_file: Path
    certificate_pem: str


def generate_signing_pair(directory: Path, common_name: str) -> SigningPair:
    """RSA-2048 key and a one-year self-signed SHA-256 certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Portico dev IdP"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    key_file = directory / "signing.key"
    cert_file = directory / "signing.crt"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    cert_file.write_text(certificate_pem)
    return SigningPair(key_file, cert_file, certificate_pem)
