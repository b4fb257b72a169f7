"""Console e-mail with a banner: where no mail server is configured, messages
are printed among uvicorn's request lines, and a plain dump is easy to miss."""

from __future__ import annotations

from typing import Any

from django.core.mail.backends import console

BANNER = "=" * 72


class EmailBackend(console.EmailBackend):
    def write_message(self, message: Any) -> None:
        self.stream.write(
            f"{BANNER}\nE-MAIL (not sent: EMAIL_HOST is unset; printed here)\n"
            f"{BANNER}\n"
        )
        super().write_message(message)
        self.stream.write(f"{BANNER}\n")
