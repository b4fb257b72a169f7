"""The audit log's plumbing (django-auditlog): who, from where, and secrets.

The apps say which of their models are audited (`accounts/audit.py`,
`catalog/audit.py`, `usage/audit.py`); this module holds what they share and
imports no app:

- `AuditlogMiddleware`: auditlog's own middleware takes the client address
  from the first entry of X-Forwarded-For, which any client can write (nginx's
  `$proxy_add_x_forwarded_for` appends to what the client sent). Here the
  address is REMOTE_ADDR only: the one the ASGI server vouches for, which
  uvicorn rewrites from X-Forwarded-For only for proxies listed in
  FORWARDED_ALLOW_IPS (docs/deploy.md). The correlation id is made here too,
  one per request, rather than read from a client's X-Correlation-ID.
- `audit_as_command`: changes made by a management command have no user, so
  they are recorded as `system/command:<name>` with one correlation id per run.
- `secret_mask`: what an audited secret field is written as. The entry says
  that the field changed and whether it is now set, never its value.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from auditlog.context import set_extra_data
from auditlog.middleware import AuditlogMiddleware as _AuditlogMiddleware
from django.conf import settings
from django.http import HttpRequest

COMMAND_ACTOR_PREFIX = "system/command:"
SECRET_SET = "(secret set, value not recorded)"
SECRET_EMPTY = "(no secret)"
# What an app passes to auditlog.register(mask_callable=...).
SECRET_MASK_CALLABLE = "portal.audit.secret_mask"


def secret_mask(value: str) -> str:
    """auditlog's `mask_callable` for secret fields: a marker, never the value.

    auditlog compares the real old and new values first and masks both sides
    of a change afterwards, so an entry still appears when a secret is replaced
    by another one (both sides read "set").
    """
    return SECRET_EMPTY if value in ("", "None") else SECRET_SET


def _ip_or_none(value: object) -> str | None:
    # The column is an inet: an address that does not parse (a unix socket's
    # peer, a test client's placeholder) must not fail the audited save.
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return None


class AuditlogMiddleware(_AuditlogMiddleware):
    """auditlog's middleware with an address no client can forge.

    Goes where `auditlog.middleware.AuditlogMiddleware` was in MIDDLEWARE,
    after AuthenticationMiddleware.
    """

    def get_extra_data(self, request: HttpRequest) -> dict[str, Any]:
        data = super().get_extra_data(request)
        if settings.AUDITLOG_DISABLE_REMOTE_ADDR:
            data["remote_addr"] = data["remote_port"] = None
        else:
            data["remote_addr"] = _ip_or_none(request.META.get("REMOTE_ADDR"))
            port = request.META.get("REMOTE_PORT")
            data["remote_port"] = int(port) if str(port).isdigit() else None
        # Every entry one request writes (a user and their groups, a model and
        # its routes) shares this id; the admin list filters on it.
        data["cid"] = f"req-{uuid.uuid4().hex}"
        return data


@contextmanager
def audit_as_command(name: str) -> Iterator[str]:
    """Record the changes made inside as made by `system/command:<name>`.

    Without it auditlog writes no actor and no address, and admin shows
    "system": true but unhelpful. The entries keep an empty actor (no user
    made them) and carry the command in `actor_email`, with a correlation id
    shared by everything this run changes. Yields that id.
    """
    cid = f"cmd-{name}-{uuid.uuid4().hex[:12]}"
    context = {
        "actor": None,
        "actor_email": f"{COMMAND_ACTOR_PREFIX}{name}",
        "remote_addr": None,
        "remote_port": None,
        "cid": cid,
    }
    with set_extra_data(context_data=context):
        yield cid
