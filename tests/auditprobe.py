"""Driving admin forms as a browser would, and reading the audit log from outside."""

from __future__ import annotations

import json
from typing import Any

from auditlog.models import LogEntry
from django import forms
from django.db.models import Model
from django.test import Client

# Documentation addresses (RFC 5737): where the tests' staff "sit".
STAFF_ADDRESS = "203.0.113.7"


def staff_client(user: Any, address: str = STAFF_ADDRESS) -> Client:
    """A logged-in admin browser whose requests come from `address`."""
    client = Client(REMOTE_ADDR=address)
    client.force_login(user)
    return client


def _form_data(form: forms.BaseForm, data: dict[str, Any]) -> None:
    for name, field in form.fields.items():
        if field.disabled:
            continue
        bound = form[name]
        value = bound.value()
        if isinstance(field.widget, forms.MultiWidget):
            parts = field.widget.decompress(value)
            for index, part in enumerate(parts):
                data[f"{bound.html_name}_{index}"] = "" if part is None else part
        elif isinstance(value, bool):
            if value:
                data[bound.html_name] = "on"
        else:
            data[bound.html_name] = "" if value is None else value


def admin_form_data(page: Any) -> dict[str, Any]:
    """What the browser posts back from an admin add/change page left as shown
    (the main form and every inline formset)."""
    data: dict[str, Any] = {}
    _form_data(page.context["adminform"].form, data)
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[management[name].html_name] = management[name].value()
        for form in formset.forms:
            _form_data(form, data)
    return data


def admin_save(client: Client, url: str, changes: dict[str, Any]) -> Any:
    """Open an admin form, change some fields, save it; the save must succeed."""
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    data = admin_form_data(page)
    for name, value in changes.items():
        if value is False:
            data.pop(name, None)
        else:
            data[name] = "on" if value is True else value
    response = client.post(url, data)
    errors = getattr(response, "context", None) and response.context.get("errors")
    assert response.status_code == 302, errors or response.status_code
    return response


def entries_for(instance: Model) -> list[LogEntry]:
    """The object's log entries, oldest first."""
    return list(LogEntry.objects.get_for_object(instance).order_by("timestamp", "pk"))


def logentry_text() -> str:
    """Every text the audit log holds, in one string, to search for secrets."""
    parts: list[str] = []
    for row in LogEntry.objects.values():
        for value in row.values():
            parts.append(
                value if isinstance(value, str) else json.dumps(value, default=str)
            )
    return "\n".join(parts)
