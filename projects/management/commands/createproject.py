"""`manage.py createproject NAME --pi USERNAME --tokens N --end YYYY-MM-DD`:
grant a project its allocation; the PI becomes its first member."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandParser

from portal.audit import audit_as_command
from projects.management.commands._projectargs import (
    date_arg,
    refusal,
    terms_text,
    tokens_arg,
    user_by_name,
)
from projects.services import project_create


class Command(BaseCommand):
    help = (
        "Create a research project: an allocation of weighted tokens (the "
        "weights quotas use) for a period, led by a principal investigator, "
        "who becomes its first member."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--pi", required=True, metavar="USERNAME")
        parser.add_argument("--tokens", required=True, type=tokens_arg, metavar="N")
        parser.add_argument(
            "--end",
            required=True,
            type=date_arg,
            metavar="YYYY-MM-DD",
            help="The last day the allocation may be used.",
        )
        parser.add_argument(
            "--start", type=date_arg, metavar="YYYY-MM-DD", help="Default: today."
        )
        parser.add_argument(
            "--member-cap",
            type=tokens_arg,
            metavar="N",
            help="The most one member may use per allocation window (0: no cap).",
        )
        parser.add_argument(
            "--monthly",
            action="store_true",
            help="Split the allocation evenly over the calendar months of the "
            "period (unused tokens do not carry over).",
        )
        parser.add_argument(
            "--dedicated",
            action="store_true",
            help="While the project runs, its keys use the dedicated service class.",
        )
        parser.add_argument("--reason", default="granted", metavar="TEXT")

    def handle(self, *args: Any, **options: Any) -> None:
        # The audit log records the project and its PI's membership as made
        # by this command.
        with audit_as_command("createproject"):
            self._handle(**options)

    def _handle(self, **options: Any) -> None:
        pi = user_by_name(options["pi"])
        try:
            project = project_create(
                name=options["name"],
                pi=pi,
                allocation_tokens=options["tokens"],
                ends_on=options["end"],
                starts_on=options["start"],
                member_cap_tokens=options["member_cap"] or None,
                monthly_instalments=options["monthly"],
                dedicated=options["dedicated"],
                reason=options["reason"],
            )
        except ValidationError as error:
            raise refusal(error) from None
        self.stdout.write(
            f"Project {project.name} (PI {pi.username}): {terms_text(project)}."
        )
