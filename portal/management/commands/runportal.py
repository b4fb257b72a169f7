"""`manage.py runportal`: what `make run` serves (see portal/devrun.py)."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from portal.devrun import ADMIN_EMAIL, ADMIN_USERNAME, portal_run


class Command(BaseCommand):
    help = (
        "Serve the portal under uvicorn with an admin account and the embedded "
        "demo backend (llama.cpp + SmolLM2-135M), stopping the backend on exit."
    )
    requires_system_checks = "__all__"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-demo-backend",
            action="store_true",
            help="Serve without starting the embedded demo backend.",
        )

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        if not settings.DEBUG:
            self.stderr.write(
                "DEBUG is off: static files are served from STATIC_ROOT, so run "
                "`manage.py collectstatic` first."
            )
        if not settings.EMAIL_HOST:
            # No mail server: a new user could not verify without reading the
            # console, so the verification page shows the link (development only).
            settings.MAIL_SHOWN_ON_PAGE = True
        # Same variables as `createsuperuser --no-input`; used only when the
        # first admin is created.
        portal_run(
            host=host,
            port=port,
            stdout=self.stdout,
            log_dir=settings.DATA_DIR,
            demo_backend=not options["no_demo_backend"],
            admin_username=os.environ.get("DJANGO_SUPERUSER_USERNAME")
            or ADMIN_USERNAME,
            admin_email=os.environ.get("DJANGO_SUPERUSER_EMAIL") or ADMIN_EMAIL,
            admin_password=os.environ.get("DJANGO_SUPERUSER_PASSWORD", ""),
        )
