"""`manage.py revokekey KEY_OR_LOOKUP_ID`: revoke one API key.

Name the key by its lookup id (shown in admin) rather than the key itself: a
key on a command line lands in shell history and process lists. `-` reads the
key or lookup id from stdin instead.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.keyformat import key_parse
from accounts.selectors import apikey_authenticate, apikey_get_by_lookup_id
from accounts.services import apikey_revoke
from portal.audit import audit_as_command


class Command(BaseCommand):
    help = "Revoke an API key, named by its lookup id or the key itself ('-': stdin)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key_or_lookup_id")

    def handle(self, *args: Any, **options: Any) -> None:
        value: str = options["key_or_lookup_id"]
        if value == "-":
            value = sys.stdin.readline()
        value = value.strip()
        if key_parse(value) is not None:
            # A full key goes through the one gate: it must be a working key.
            key = apikey_authenticate(raw_key=value)
            if key is None:
                raise CommandError(
                    "No active key matches (unknown, expired or revoked)."
                )
        else:
            key = apikey_get_by_lookup_id(lookup_id=value)
            if key is None:
                raise CommandError("No key has this lookup id.")
        already = key.revoked_at is not None
        # The audit log records the revocation as made by this command.
        with audit_as_command("revokekey"):
            apikey_revoke(key=key)
        verb = "was already revoked" if already else "revoked"
        self.stdout.write(f"Key {key.display} ({key.name!r} of {key.user}) {verb}.")
