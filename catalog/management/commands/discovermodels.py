"""`manage.py discovermodels [NAME]`: the periodic model discovery, by hand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.management.commands._discovery_output import discovery_print
from catalog.selectors import backend_get
from catalog.services import backend_discover_all, backend_discover_models
from portal.audit import audit_as_command


class Command(BaseCommand):
    help = (
        "Ask backends for GET /v1/models and update the catalog: every enabled "
        "backend, or only NAME (even if disabled)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?")

    def handle(self, *args: Any, **options: Any) -> None:
        # The audit log records the changes as made by this command.
        with audit_as_command("discovermodels"):
            self._handle(**options)

    def _handle(self, **options: Any) -> None:
        if options["name"]:
            backend = backend_get(name=options["name"])
            if backend is None:
                raise CommandError(f"No backend named {options['name']!r}")
            results = [backend_discover_models(backend=backend)]
        else:
            results = backend_discover_all()
            if not results:
                self.stdout.write("No enabled backends. Add one with addbackend.")
        for result in results:
            discovery_print(result, out=self.stdout, style=self.style)
        failed = [result.backend for result in results if not result.ok]
        if failed:
            raise CommandError(f"Unreachable: {', '.join(failed)}")
