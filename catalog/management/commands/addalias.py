"""`manage.py addalias NAME TARGET_MODEL [--params JSON]`: serve a model's
deployments under another name with default parameters."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.aliases import alias_upsert
from portal.audit import audit_as_command


class Command(BaseCommand):
    help = (
        "Make NAME an alias of TARGET_MODEL: the same deployments, listed in "
        "/v1/models as a model of its own, with default parameters merged into "
        "each request (the request's own values win). Re-running it updates "
        "the alias; options left out keep their current values. Example: "
        "addalias qwen3.5-122b-nonthinking qwen3.5-122b "
        '--params \'{"chat_template_kwargs": {"enable_thinking": false}}\''
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("target_model")
        parser.add_argument(
            "--params", help="Default parameters, a JSON object ('{}' for none)."
        )
        parser.add_argument(
            "--system-prompt-prefix",
            help="Text put before the system message of chat requests.",
        )
        parser.add_argument(
            "--group",
            action="append",
            dest="groups",
            help="Only members of this group may use the alias (repeatable). "
            "A new alias otherwise copies the target's access.",
        )
        parser.add_argument(
            "--everyone",
            action="store_true",
            help="Open the alias to everyone (clears its groups).",
        )
        parser.add_argument("--quota-weight", help="Default: 1.")
        parser.add_argument("--display-name")

    def handle(self, *args: Any, **options: Any) -> None:
        with audit_as_command("addalias"):
            self._handle(**options)

    def _handle(self, **options: Any) -> None:
        groups = [] if options["everyone"] else options["groups"]
        try:
            alias, created = alias_upsert(
                name=options["name"],
                target=options["target_model"],
                params=_json_object(options["params"]),
                system_prompt_prefix=options["system_prompt_prefix"],
                groups=groups,
                quota_weight=_weight(options["quota_weight"]),
                display_name=options["display_name"],
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        verb = "Created" if created else "Updated"
        params = json.dumps(alias.default_params) if alias.default_params else "none"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} alias {alias.public_id} -> {alias.alias_of} "
                f"(default parameters: {params})"
            )
        )


def _json_object(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise CommandError(f"--params is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise CommandError(
            "--params must be a JSON object, e.g. '{\"temperature\": 0.6}'."
        )
    return value


def _weight(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        weight = Decimal(text)
    except InvalidOperation:
        raise CommandError("--quota-weight must be a number, e.g. 0.5.") from None
    if weight < 0 or not weight.is_finite():
        raise CommandError("--quota-weight must be 0 or more.")
    return weight
