"""What the project commands share: reading their arguments (dates, token
counts, a project or user by name) and saying why a service refused."""

from __future__ import annotations

import argparse
from datetime import date

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from accounts.models import User
from accounts.selectors import user_get_by_username
from projects.models import Project


def date_arg(value: str) -> date:
    """argparse `type=`: a date written YYYY-MM-DD."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date (YYYY-MM-DD)"
        ) from None


def tokens_arg(value: str) -> int:
    """argparse `type=`: a whole number of weighted tokens, 0 or more."""
    try:
        tokens = int(value.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if tokens < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 or more")
    return tokens


def project_by_name(name: str) -> Project:
    project = Project.objects.filter(name=name.strip()).first()
    if project is None:
        raise CommandError(f"No project named {name!r}.")
    return project


def user_by_name(username: str) -> User:
    user = user_get_by_username(username=username)
    if user is None:
        raise CommandError(f"No user {username!r}.")
    return user


# A model field named in a refusal, as the commands' options call it.
OPTION_NAMES = {
    "name": "NAME",
    "pi": "--pi",
    "allocation_tokens": "--tokens",
    "starts_on": "--start",
    "ends_on": "--end",
    "member_cap_tokens": "--member-cap",
    "role": "--role",
}


def refusal(error: ValidationError) -> CommandError:
    """A service's ValidationError as one line for the operator."""
    if not hasattr(error, "error_dict"):
        return CommandError(" ".join(error.messages))
    parts = []
    for field, messages in error.message_dict.items():
        text = " ".join(messages)
        parts.append(
            text if field == "__all__" else f"{OPTION_NAMES.get(field, field)}: {text}"
        )
    return CommandError("; ".join(parts))


def terms_text(project: Project) -> str:
    """The grant in one line: tokens, period, instalments, cap, class."""
    parts = [
        f"{project.allocation_tokens:,} weighted tokens "
        f"from {project.starts_on} to {project.ends_on}"
    ]
    if project.monthly_instalments:
        parts.append("in monthly instalments")
    if project.member_cap_tokens:
        parts.append(f"at most {project.member_cap_tokens:,} per member per window")
    if project.dedicated:
        parts.append("dedicated service class")
    return ", ".join(parts)
