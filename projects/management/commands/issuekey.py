"""`manage.py issuekey USERNAME`: make an API key and print only the key.

For operators and scripts (`KEY=$(python manage.py issuekey alice)`): the key
is the only thing on stdout; anything else goes to stderr. It lives in
projects, the lowest app that knows all it touches: `--project` makes a
project key (projects.services checks membership) and `--rpm`/`--tpm` write
the key's row of the catalog's limit tables.
"""

from __future__ import annotations

import shlex
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.models import User
from accounts.selectors import user_get_by_username
from accounts.services import IssuedKey, apikey_create, user_create_for_keys
from catalog.services import key_limits_set
from portal.audit import audit_as_command
from projects.management.commands._projectargs import project_by_name
from projects.models import Project
from projects.services import project_key_create


class Command(BaseCommand):
    help = "Create an API key for a user and print it (only it) on stdout."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="issued by operator")
        parser.add_argument(
            "--create-user",
            action="store_true",
            help="Create the user (no usable password) if it does not exist.",
        )
        parser.add_argument(
            "--staff",
            action="store_true",
            help="With --create-user: make the new user staff. An existing user "
            "must already be staff.",
        )
        parser.add_argument(
            "--project",
            metavar="NAME",
            help="Make a project key: it bills project NAME's allocation. The "
            "user must be a member (manage.py projectmember).",
        )
        parser.add_argument("--expires-days", type=int, default=None, metavar="N")
        parser.add_argument(
            "--models",
            default=None,
            metavar="a,b",
            help="Comma-separated public model ids the key may use (default: all).",
        )
        parser.add_argument(
            "--rpm",
            type=int,
            default=None,
            metavar="N",
            help="Requests per minute for this key (0: unlimited).",
        )
        parser.add_argument(
            "--tpm",
            type=int,
            default=None,
            metavar="N",
            help="Tokens per minute for this key (0: unlimited).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # The audit log records the user, key and limits made here as made by
        # this command.
        with audit_as_command("issuekey"):
            self._issue(options)

    def _issue(self, options: dict[str, Any]) -> None:
        for limit in ("rpm", "tpm"):
            if options[limit] is not None and options[limit] < 0:
                raise CommandError(f"--{limit} must be 0 (unlimited) or more.")
        expires_at = None
        if options["expires_days"] is not None:
            if options["expires_days"] < 1:
                raise CommandError("--expires-days must be 1 or more.")
            expires_at = timezone.now() + timedelta(days=options["expires_days"])
        project = project_by_name(options["project"]) if options["project"] else None
        user = self._user(options, project=project)
        issued = self._key(options, user=user, project=project, expires_at=expires_at)
        if options["rpm"] is not None or options["tpm"] is not None:
            try:
                key_limits_set(key=issued.key, rpm=options["rpm"], tpm=options["tpm"])
            except ValidationError as error:
                raise CommandError(" ".join(error.messages)) from None
        if issued.expiry_capped:
            self.stderr.write(
                f"Expiry capped by API_KEY_MAX_LIFETIME_DAYS: {issued.key.expires_at}."
            )
        self.stdout.write(issued.raw)

    def _user(self, options: dict[str, Any], *, project: Project | None) -> User:
        """The named user, made first with --create-user (never for a project
        key: a new account is no project's member)."""
        username: str = options["username"]
        user = user_get_by_username(username=username)
        if user is None:
            if not options["create_user"]:
                raise CommandError(f"No user {username!r} (use --create-user).")
            if project is not None:
                raise CommandError(_not_a_member(username, project))
            try:
                user = user_create_for_keys(
                    username=username, is_staff=options["staff"]
                )
            except ValidationError as error:
                raise CommandError(f"Cannot create {username!r}: {error}") from None
            self.stderr.write(f"Created user {username!r}.")
        elif options["staff"] and not user.is_staff:
            raise CommandError(f"{username!r} exists and is not staff.")
        return user

    def _key(
        self,
        options: dict[str, Any],
        *,
        user: User,
        project: Project | None,
        expires_at: datetime | None,
    ) -> IssuedKey:
        models = None
        if options["models"] is not None:
            models = [item for item in options["models"].split(",") if item.strip()]
        fields = {
            "user": user,
            "name": options["name"],
            "expires_at": expires_at,
            "allowed_models": models,
        }
        try:
            if project is None:
                return apikey_create(**fields)
            return project_key_create(project=project, **fields)
        except ValidationError as error:
            if project is not None and "project" in error.message_dict:
                raise CommandError(_not_a_member(user.username, project)) from None
            raise CommandError(_messages(error)) from None


def _not_a_member(username: str, project: Project) -> str:
    return (
        f"{username!r} is not a member of project {project.name}; add them "
        f"first with `manage.py projectmember {shlex.quote(project.name)} "
        f"{shlex.quote(username)}`."
    )


def _messages(error: ValidationError) -> str:
    return "; ".join(
        f"{field}: {' '.join(messages)}"
        for field, messages in error.message_dict.items()
    )
