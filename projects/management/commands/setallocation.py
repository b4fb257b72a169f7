"""`manage.py setallocation NAME --tokens N [--end YYYY-MM-DD] [--member-cap N]
[--reason TEXT]`: change a project's grant; the change is kept in its
allocation history."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandParser

from portal.audit import audit_as_command
from projects.management.commands._projectargs import (
    date_arg,
    project_by_name,
    refusal,
    terms_text,
    tokens_arg,
)
from projects.services import allocation_set


class Command(BaseCommand):
    help = (
        "Set a project's allocation (weighted tokens for the whole period, "
        "split over its months when it has monthly instalments), and "
        "optionally move its end or its per-member cap. Kept in its history."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--tokens", required=True, type=tokens_arg, metavar="N")
        parser.add_argument(
            "--end",
            type=date_arg,
            metavar="YYYY-MM-DD",
            help="A new last day (default: unchanged).",
        )
        parser.add_argument(
            "--member-cap",
            type=tokens_arg,
            metavar="N",
            help="A new per-member cap per window (0: no cap; default: unchanged).",
        )
        parser.add_argument(
            "--reason", default="", metavar="TEXT", help="Kept in the history."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # The audit log records the change as made by this command.
        with audit_as_command("setallocation"):
            self._handle(**options)

    def _handle(self, **options: Any) -> None:
        project = project_by_name(options["name"])
        try:
            project = allocation_set(
                project=project,
                allocation_tokens=options["tokens"],
                ends_on=options["end"],
                member_cap_tokens=options["member_cap"],
                reason=options["reason"],
            )
        except ValidationError as error:
            raise refusal(error) from None
        self.stdout.write(f"Project {project.name}: {terms_text(project)}.")
