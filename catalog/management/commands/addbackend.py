"""`manage.py addbackend NAME BASE_URL`: register (or update) a backend and
discover its models right away."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.management.commands._discovery_output import discovery_print
from catalog.models import Backend
from catalog.services import backend_add, backend_discover_models
from portal.audit import audit_as_command


class Command(BaseCommand):
    help = (
        "Register an OpenAI-compatible backend (BASE_URL as for the OpenAI SDK, "
        "e.g. http://gpu01:8000/v1) and discover its models. Re-running it "
        "updates the backend; options left out keep their current values."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("base_url")
        parser.add_argument(
            "--api-key",
            help="Bearer token the backend expects. Needed again when an "
            "existing backend moves to another host ('' for none).",
        )
        parser.add_argument(
            "--pool", choices=Backend.Pool.values, help="Default: shared."
        )
        parser.add_argument(
            "--max-concurrency",
            type=int,
            help="Requests in flight per model on this backend (default 4).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # The audit log records the changes as made by this command.
        with audit_as_command("addbackend"):
            self._handle(**options)

    def _handle(self, **options: Any) -> None:
        try:
            backend = backend_add(
                name=options["name"],
                base_url=options["base_url"],
                api_key=options["api_key"],
                pool=options["pool"],
                max_concurrency=options["max_concurrency"],
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        self.stdout.write(f"Backend {backend.name} at {backend.base_url}")
        result = backend_discover_models(backend=backend)
        discovery_print(result, out=self.stdout, style=self.style)
        if not result.ok:
            # Registered all the same: discovery retries on its schedule.
            raise CommandError(
                f"{backend.name} is registered but did not answer; "
                "run `manage.py discovermodels` once it is up"
            )
