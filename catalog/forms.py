from typing import Any

from django import forms
from django.contrib.auth.models import Group
from django.utils.translation import gettext_lazy as _


class AccessRequestForm(forms.Form):
    group = forms.ModelChoiceField(
        queryset=Group.objects.filter(portico_limits__requestable=True),
        label=_("Class"),
        empty_label=None,
    )
    use_case = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=4000,
        label=_("Use case"),
        help_text=_("What you want to do, and why the shared class is not enough."),
    )
    models_wanted = forms.CharField(
        label=_("Models"), max_length=500, required=False, help_text=_("Which models.")
    )
    expected_volume = forms.CharField(
        max_length=200,
        required=False,
        label=_("Expected volume"),
        help_text=_("For example: 50,000 requests over two weeks."),
    )

    def __init__(self, *args: Any, offered: list[int], **kwargs: Any) -> None:
        """Only the classes the user may still ask for (not held, not waiting)."""
        super().__init__(*args, **kwargs)
        field = self.fields["group"]
        field.queryset = field.queryset.filter(pk__in=offered)  # type: ignore[attr-defined]
