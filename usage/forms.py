"""Settings > Usage's date range: ?from=YYYY-MM-DD&to=YYYY-MM-DD (both days
included), checked before anything is read."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms
from django.utils.translation import gettext as _

MAX_RANGE_DAYS = 366


class UsageRangeForm(forms.Form):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # "from" is a Python keyword, so the fields are added by name.
        self.fields["from"] = forms.DateField(required=False)
        self.fields["to"] = forms.DateField(required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, last = data.get("from"), data.get("to")
        if (first is None) != (last is None):
            raise forms.ValidationError(_("Give both a first and a last day."))
        if first is not None and last is not None:
            if first > last:
                raise forms.ValidationError(_("The first day comes after the last."))
            if (last - first).days >= MAX_RANGE_DAYS:
                raise forms.ValidationError(
                    _("Choose at most %(days)d days at a time.")
                    % {"days": MAX_RANGE_DAYS}
                )
        return data

    def days(self) -> tuple[date, date] | None:
        """[first_day, end_day) when a valid range was given, else None (the
        page's default)."""
        if not self.is_valid() or self.cleaned_data.get("from") is None:
            return None
        return self.cleaned_data["from"], self.cleaned_data["to"] + timedelta(days=1)
