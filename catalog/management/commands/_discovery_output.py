"""Shared printing for the catalog's management commands."""

from __future__ import annotations

from django.core.management.base import OutputWrapper
from django.core.management.color import Style

from catalog.services import DiscoveryResult


def discovery_print(
    result: DiscoveryResult, *, out: OutputWrapper, style: Style
) -> None:
    if not result.ok:
        out.write(style.ERROR(f"{result.backend}: unreachable: {result.error}"))
        return
    out.write(style.SUCCESS(f"{result.backend}: {len(result.served)} model(s) served"))
    for public_id in result.served:
        marker = " (new)" if public_id in result.created else ""
        out.write(f"  {public_id}{marker}")
    for upstream in result.gone:
        out.write(style.WARNING(f"  {upstream} (no longer listed: not served)"))
