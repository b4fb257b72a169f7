"""The verification page's view of mail in development (MAIL_SHOWN_ON_PAGE)."""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings

from accounts.adapter import MAIL_LINK_SESSION_KEY

register = template.Library()


@register.simple_tag(takes_context=True)
def mail_shown_on_page(context: dict[str, Any]) -> dict[str, Any]:
    """Whether this portal sends no mail, and the last verification link if the
    page may show it (never where a mail server is configured)."""
    request = context.get("request")
    shown = settings.MAIL_SHOWN_ON_PAGE and not settings.EMAIL_HOST
    link = request.session.get(MAIL_LINK_SESSION_KEY) if shown and request else None
    return {"no_mail": not settings.EMAIL_HOST, "shown": shown, "link": link}
