"""`manage.py setquota (--user NAME | --group NAME) --tokens N --period P`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from portal.audit import audit_as_command
from usage.periods import PERIODS
from usage.services import quota_clear, quota_set


class Command(BaseCommand):
    help = (
        "Set the token quota of a user (overrides their groups') or of a group "
        "(the default of its members). Tokens count times each model's weight."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--user", metavar="NAME")
        who.add_argument("--group", metavar="NAME")
        parser.add_argument("--tokens", type=int, metavar="N")
        parser.add_argument("--period", choices=PERIODS)
        parser.add_argument(
            "--clear", action="store_true", help="remove the quota instead"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # The audit log records the changes as made by this command.
        with audit_as_command("setquota"):
            self._handle(**options)

    def _handle(self, **options: Any) -> None:
        target: dict[str, Any] = {}
        if options["user"]:
            user = User.objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user named {options['user']!r}")
            target["user"] = user
            label = f"user {user.username}"
        else:
            group = Group.objects.filter(name=options["group"]).first()
            if group is None:
                raise CommandError(f"No group named {options['group']!r}")
            target["group"] = group
            label = f"group {group.name}"
        if options["clear"]:
            removed = quota_clear(**target)
            self.stdout.write(
                f"Removed the quota of {label}." if removed else f"{label} had none."
            )
            return
        if options["tokens"] is None or options["period"] is None:
            raise CommandError("--tokens and --period are required (or --clear)")
        if options["tokens"] < 0:
            raise CommandError("--tokens must be 0 or more")
        quota = quota_set(**target, tokens=options["tokens"], period=options["period"])
        self.stdout.write(
            f"Quota of {label}: {quota.tokens:,} tokens per {quota.period}."
        )
