"""Settings > Access: ask to join a service class (thin: form in, service out)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from catalog.access_requests import access_request_create
from catalog.forms import AccessRequestForm
from catalog.selectors import access_classes_for_user, access_standing_for_user


@login_required
def settings_access(request: HttpRequest) -> HttpResponse:
    classes = access_classes_for_user(user=request.user)
    offered = [entry["group"].pk for entry in classes if entry["offered"]]
    form = AccessRequestForm(request.POST or None, offered=offered)
    if request.method == "POST" and form.is_valid():
        try:
            access_request_create(user=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(
                request, _("Your request was sent. You will hear from us by e-mail.")
            )
            return redirect("settings_access")
    context = {
        "form": form,
        "classes": classes,
        "offered": offered,
        "standing": access_standing_for_user(user=request.user),
    }
    return render(request, "catalog/settings_access.html", context)
