"""Forms for Settings > Projects: declarations only; the services validate."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from projects.models import ProjectMembership

ROLE_LABELS = dict(ProjectMembership.ROLES)
MAX_PERIOD_DAYS = 3660


class InvitationForm(forms.Form):
    who = forms.CharField(
        max_length=254,
        label=_("Username or e-mail address"),
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    role = forms.ChoiceField(choices=[], label=_("Role"))

    def __init__(self, *args: Any, roles: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(role, ROLE_LABELS[role]) for role in roles]


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(
        choices=[
            (ProjectMembership.ROLE_MEMBER, _("member")),
            (ProjectMembership.ROLE_MANAGER, _("manager")),
        ]
    )


class ProjectKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label=_("Key name"),
        widget=forms.TextInput(attrs={"placeholder": _("e.g. cluster job")}),
    )
    expires_on = forms.DateField(
        required=False,
        label=_("Expires on (optional)"),
        help_text=_("The key works through the end of this day."),
        widget=forms.DateInput(attrs={"type": "date"}),
    )


class PeriodForm(forms.Form):
    """?from=YYYY-MM-DD&to=YYYY-MM-DD, both days included."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, label in (("from", _("From")), ("to", _("To"))):
            self.fields[name] = forms.DateField(
                required=False,
                label=label,
                input_formats=["%Y-%m-%d"],
                widget=forms.DateInput(attrs={"type": "date"}),
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, last = data.get("from"), data.get("to")
        if first and last and last < first:
            raise forms.ValidationError(_("The period ends before it starts."))
        if first and last and (last - first).days > MAX_PERIOD_DAYS:
            raise forms.ValidationError(_("Choose at most ten years."))
        return data

    def period(self, *, default: tuple[date, date]) -> tuple[date, date]:
        """The chosen days, each missing or invalid end from `default`."""
        if not self.is_valid():
            return default
        first = self.cleaned_data.get("from") or default[0]
        last = self.cleaned_data.get("to") or default[1]
        if last < first:
            return default
        return first, min(last, first + timedelta(days=MAX_PERIOD_DAYS))


class ReportMonthForm(forms.Form):
    month = forms.RegexField(regex=re.compile(r"^\d{4}-(0[1-9]|1[0-2])$"))

    def first_day(self, *, default: date) -> date:
        if not self.is_valid():
            return default.replace(day=1)
        year, month = self.cleaned_data["month"].split("-")
        return date(int(year), int(month), 1)


class AllocationRequestForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, label=_("Project name"))
    tokens = forms.IntegerField(
        min_value=1,
        label=_("Tokens"),
        help_text=_("Weighted tokens for the whole period."),
    )
    ends_on = forms.DateField(
        label=_("Until"), widget=forms.DateInput(attrs={"type": "date"})
    )
    justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        label=_("What for"),
        help_text=_(
            "The research, the models, the expected volume; funders' "
            "grant numbers if any."
        ),
    )
