"""The admin index's banner of decisions waiting for staff."""

from __future__ import annotations

from django import template

from ops.selectors import AttentionItem, pending_decisions

register = template.Library()


@register.simple_tag
def ops_pending_decisions() -> list[AttentionItem]:
    return pending_decisions()
