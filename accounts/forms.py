"""Forms for Settings > Account: declarations only; the services validate."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

GRACE_CHOICES = [
    (0, _("None: the old key stops now")),
    (3600, _("1 hour")),
    (86400, _("1 day")),
    (7 * 86400, _("7 days")),
]


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label=_("Name"),
        widget=forms.TextInput(attrs={"placeholder": _("e.g. laptop, cluster job")}),
    )
    expires_on = forms.DateField(
        required=False,
        label=_("Expires on (optional)"),
        help_text=_("The key works through the end of this day."),
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(self, *args: Any, model_choices: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A checkbox list when the catalog is there, else free text.
        if model_choices:
            self.fields["models"] = forms.MultipleChoiceField(
                required=False,
                label=_("Allowed models (optional)"),
                help_text=_("None ticked: every model you may use."),
                choices=[(choice, choice) for choice in model_choices],
                widget=forms.CheckboxSelectMultiple,
            )
        else:
            self.fields["models"] = forms.CharField(
                required=False,
                max_length=4000,
                label=_("Allowed models (optional)"),
                help_text=_("Model ids separated by commas; empty: every model."),
            )


class ApiKeyRollForm(forms.Form):
    grace_seconds = forms.TypedChoiceField(
        choices=GRACE_CHOICES,
        coerce=int,
        initial=0,
        label=_("Grace period"),
        help_text=_("How long the old key keeps working beside the new one."),
    )
