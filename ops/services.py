"""Backend health checks and the staff e-mails about them.

A check is model discovery (catalog.services.backend_discover_models): GET
/v1/models. It records the answer on the backend at once, so routing reacts
to the first failure: the proxy's catalog carries `healthy`, and the router
sends requests to healthy routes while there are any. The first good answer
brings the backend back, with its models refreshed.

Staff are told more calmly: a backend is reported down after
BACKEND_ALERT_AFTER failed checks in a row (a single slow answer is no
emergency), and reported back on its first good check after that. Each
transition is announced exactly once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db.models import F
from django.utils import timezone

from catalog.models import Backend
from catalog.services import backend_discover_all
from ops.models import BackendAlertState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendCheck:
    backend: str
    ok: bool
    error: str
    failed_checks: int  # in a row, this one included
    alert: str  # "down" or "up" when this check announced a transition, else ""


def backend_check_all() -> list[BackendCheck]:
    """Check every enabled backend once (Celery beat every
    BACKEND_CHECK_INTERVAL_SECONDS; `manage.py checkbackends` by hand).

    One backend's failure never stops the others; the results come back in
    backend name order."""
    results = backend_discover_all()
    backends = Backend.objects.in_bulk(
        [result.backend for result in results], field_name="name"
    )
    return [
        backend_check_record(
            backend=backends[result.backend], ok=result.ok, error=result.error
        )
        for result in results
        if result.backend in backends
    ]


def backend_check_record(
    *, backend: Backend, ok: bool, error: str = ""
) -> BackendCheck:
    """Count one check of `backend` and announce a transition if it makes one.

    Invariant: `reported_down` flips by a conditional UPDATE, so however many
    checks run at once (beat, a command by hand) exactly one of them makes
    each flip, and only that one sends the e-mail.
    """
    now = timezone.now()
    BackendAlertState.objects.get_or_create(backend=backend)
    state = BackendAlertState.objects.filter(pk=backend.pk)
    if ok:
        state.update(failed_checks=0)
        flipped = state.filter(reported_down=True).update(
            reported_down=False, reported_at=now
        )
        alert = "up" if flipped else ""
    else:
        state.update(failed_checks=F("failed_checks") + 1)
        flipped = state.filter(
            reported_down=False, failed_checks__gte=settings.BACKEND_ALERT_AFTER
        ).update(reported_down=True, reported_at=now)
        alert = "down" if flipped else ""
    failed = state.values_list("failed_checks", flat=True).get()
    if alert:
        _alert_send(backend=backend, down=alert == "down", error=error, failed=failed)
    return BackendCheck(
        backend=backend.name, ok=ok, error=error, failed_checks=failed, alert=alert
    )


def alert_recipients() -> list[str]:
    if settings.ALERT_EMAILS:
        return list(settings.ALERT_EMAILS)
    return list(
        get_user_model()
        .objects.filter(is_staff=True, is_active=True)
        .exclude(email="")
        .order_by("email")
        .values_list("email", flat=True)
    )


def _alert_send(*, backend: Backend, down: bool, error: str, failed: int) -> None:
    site = settings.SITE_NAME
    if down:
        subject = f"[{site}] Backend {backend.name} is down"
        body = (
            f"Backend {backend.name} ({backend.base_url}) failed {failed} health "
            f"checks in a row.\nLast error: {error or 'unknown'}\n\n"
            "Requests go to other backends serving the same models while it "
            "fails; models only it serves answer with errors. You will get one "
            "more e-mail when it answers again."
        )
    else:
        subject = f"[{site}] Backend {backend.name} is back"
        body = (
            f"Backend {backend.name} ({backend.base_url}) answers its health "
            "checks again and is back in rotation; its models were refreshed."
        )
    if settings.SITE_URL:
        body += f"\n\nDashboard: {settings.SITE_URL}/admin/dashboard/"
    recipients = alert_recipients()
    log = logger.error if down else logger.warning
    log("backend %s is %s", backend.name, "down" if down else "back")
    if not recipients:
        logger.warning("no recipient for backend alerts: set ALERT_EMAILS")
        return
    try:
        send_mail(subject, body, None, recipients)
    except Exception:
        # The check itself must go on; the transition is in the log above.
        logger.exception("could not send the alert about backend %s", backend.name)
