"""`manage.py exportusage [--user NAME] [--project NAME] [--since ISO-DATE]
--format csv|json`: one row per usage record on stdout, oldest first."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.models import User
from usage.exports import usage_csv_write, usage_json_write
from usage.periods import local_midnight
from usage.selectors import usage_export_rows


def since_parse(value: str) -> datetime:
    """An ISO date (local midnight) or date-time (local time when naive)."""
    try:
        if len(value) == 10:
            return local_midnight(date.fromisoformat(value))
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--since {value!r} is not an ISO date or date-time"
        ) from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def _project_id(name: str) -> int:
    # projects sits above usage: its model is looked up by name, as the usage
    # record's foreign key names it, never imported.
    model = apps.get_model("projects", "Project")
    found = model.objects.filter(name=name.strip()).values_list("pk", flat=True)
    if not found:
        raise CommandError(f"No project named {name!r}")
    return found[0]


class _Out:
    """A file-like view of the command's stdout (no extra line endings)."""

    def __init__(self, command: BaseCommand) -> None:
        self.command = command

    def write(self, text: str) -> int:
        self.command.stdout.write(text, ending="")
        return len(text)


class Command(BaseCommand):
    help = (
        "Write every usage record (or one user's, one project's, or those since "
        "a date) to stdout as CSV or a JSON array, with the fields request_id, "
        "user, key_id, model, endpoint, prompt_tokens, completion_tokens, "
        "usage_source, status, finish_reason, started_at, ttft_ms, duration_ms, "
        "client, project (the project the request billed; empty: the user's "
        "own budget)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", metavar="NAME")
        parser.add_argument(
            "--project", metavar="NAME", help="Only what project NAME was billed."
        )
        parser.add_argument("--since", metavar="ISO-DATE")
        parser.add_argument("--format", choices=("csv", "json"), required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        user = None
        if options["user"]:
            user = User.objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user named {options['user']!r}")
        filters: dict[str, Any] = {"user": user}
        if options["project"]:
            filters["project_id"] = _project_id(options["project"])
        if options["since"]:
            filters["since"] = since_parse(options["since"])
        rows = usage_export_rows(**filters)
        out = _Out(self)
        if options["format"] == "csv":
            usage_csv_write(rows, out)
        else:
            usage_json_write(rows, out)
