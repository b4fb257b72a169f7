"""`manage.py importidps FILE --federation NAME --cert CERT.pem`: register the
IdPs of a federation's signed SAML metadata aggregate (eduGAIN's, a national
federation's) for sign-in, disabling those it no longer lists.

Download the file first (curl, a cron job): the command reads only local
files, so what it trusts is exactly what its signature check saw. The
certificate comes from the federation's web site, checked out of band;
SAML_METADATA_CERT_FILE (setting) is the default for --cert.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sso.federation import (
    SKIP_NO_SSO,
    FederationMetadata,
    FederationMetadataError,
    federation_metadata_read,
)
from sso.federation_import import (
    FederationImportError,
    FederationImportResult,
    federation_import,
)


class Command(BaseCommand):
    help = "Register the IdPs of a signed SAML metadata aggregate for sign-in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the aggregate, an XML file")
        parser.add_argument(
            "--federation",
            required=True,
            help="slug naming the aggregate (edugain): its IdPs' SP URLs "
            "(/accounts/saml/<slug>/acs/) and provider ids start with it",
        )
        parser.add_argument(
            "--cert",
            help="PEM certificate(s) the aggregate must be signed with "
            "(default: the SAML_METADATA_CERT_FILE setting)",
        )
        parser.add_argument(
            "--research-and-scholarship-only",
            action="store_true",
            help="register only REFEDS R&S IdPs; disable the others",
        )
        parser.add_argument(
            "--allow-unsigned",
            action="store_true",
            help="read the file without checking any signature (test "
            "federations only: anyone who can change the file can then sign "
            "in as anyone)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        cert_pem = self._cert_pem(options)
        try:
            metadata = federation_metadata_read(
                source=Path(options["file"]),
                cert_pem=cert_pem,
                allow_unsigned=options["allow_unsigned"],
            )
            result = federation_import(
                federation=options["federation"],
                idps=metadata.idps,
                only_research_and_scholarship=options["research_and_scholarship_only"],
            )
        except (FederationMetadataError, FederationImportError) as error:
            raise CommandError(f"{options['file']}: refused: {error}") from None
        self.stdout.write(
            summary_line(
                federation=options["federation"], metadata=metadata, result=result
            )
        )

    def _cert_pem(self, options: dict[str, Any]) -> bytes | None:
        """The certificate's bytes; None only with --allow-unsigned, which
        then wins over a configured default certificate."""
        if options["allow_unsigned"]:
            self.stderr.write(
                self.style.WARNING(
                    "WARNING: --allow-unsigned: the aggregate's signature is NOT "
                    "checked. Whoever can change this file can sign in to Portico "
                    "as anyone at any of its IdPs. Use only for a test federation."
                )
            )
            return None
        path = options["cert"] or getattr(settings, "SAML_METADATA_CERT_FILE", None)
        if not path:
            raise CommandError(
                "No certificate to check the aggregate's signature: give --cert "
                "(or set SAML_METADATA_CERT_FILE); --allow-unsigned only for a "
                "test federation."
            )
        try:
            return Path(path).read_bytes()
        except OSError as error:
            raise CommandError(f"Cannot read the certificate {path}: {error}") from None


def summary_line(
    *, federation: str, metadata: FederationMetadata, result: FederationImportResult
) -> str:
    """`edugain: 4990 created, 0 updated, 0 unchanged, 10 disabled (12 entities
    skipped: no SAML 2 SSO endpoint)`; other skip reasons follow, if any."""
    line = (
        f"{federation}: {result.created} created, {result.updated} updated, "
        f"{result.unchanged} unchanged, {result.disabled} disabled"
    )
    skipped = dict(metadata.skipped)
    parts = [f"{skipped.pop(SKIP_NO_SSO, 0)} entities skipped: {SKIP_NO_SSO}"]
    parts += [f"{count} skipped: {reason}" for reason, count in skipped.items()]
    return f"{line} ({'; '.join(parts)})"
