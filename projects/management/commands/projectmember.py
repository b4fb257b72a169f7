"""`manage.py projectmember NAME USERNAME [--role member|manager] [--remove]`:
add a member to a project, change their role, or take them out (their keys
for the project are revoked)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from portal.audit import audit_as_command
from projects.management.commands._projectargs import (
    project_by_name,
    refusal,
    user_by_name,
)
from projects.models import Project, ProjectMembership
from projects.services import project_member_remove, project_member_set


class Command(BaseCommand):
    help = (
        "Add USERNAME to project NAME (or change their role); with --remove, "
        "take them out and revoke their keys for the project. The PI is "
        "always a member."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("username")
        parser.add_argument(
            "--role",
            choices=(ProjectMembership.ROLE_MEMBER, ProjectMembership.ROLE_MANAGER),
            help="Default: member.",
        )
        parser.add_argument("--remove", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        # The audit log records the membership and the revoked keys as
        # changed by this command.
        with audit_as_command("projectmember"):
            self._handle(**options)

    def _handle(self, **options: Any) -> None:
        if options["remove"] and options["role"]:
            raise CommandError("Give --role or --remove, not both.")
        project = project_by_name(options["name"])
        user = user_by_name(options["username"])
        if options["remove"]:
            self._remove(project=project, user=user)
            return
        try:
            membership = project_member_set(
                project=project,
                user=user,
                role=options["role"] or ProjectMembership.ROLE_MEMBER,
            )
        except ValidationError as error:
            raise refusal(error) from None
        self.stdout.write(
            f"{user.username} is a {membership.get_role_display()} of {project.name}."
        )

    def _remove(self, *, project: Project, user: User) -> None:
        if not ProjectMembership.objects.filter(project=project, user=user).exists():
            raise CommandError(f"{user.username} is not a member of {project.name}.")
        try:
            stopped = project_member_remove(project=project, user=user)
        except ValidationError as error:
            raise refusal(error) from None
        self.stdout.write(
            f"Removed {user.username} from {project.name}; "
            f"{stopped} project key(s) revoked."
        )
