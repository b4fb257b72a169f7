"""Settings > Projects: ask for a project, or for more of one you lead."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from projects.allocation_requests import allocation_request_create
from projects.forms import AllocationRequestForm
from projects.models import AllocationRequest, Project, ProjectMembership


def _request_page(request: HttpRequest, *, project: Project | None) -> HttpResponse:
    form = AllocationRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            allocation_request_create(
                requester=request.user,  # type: ignore[arg-type]
                project=project,
                name=form.cleaned_data["name"],
                tokens=form.cleaned_data["tokens"],
                ends_on=form.cleaned_data["ends_on"],
                justification=form.cleaned_data["justification"],
            )
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                form.add_error(field if field in form.fields else None, problems)
        else:
            messages.success(
                request,
                _("Your request is with the operators; you will hear by e-mail."),
            )
            return redirect("settings_projects")
    pending = AllocationRequest.objects.filter(
        requester=request.user, state=AllocationRequest.State.PENDING
    ).select_related("project")
    return render(
        request,
        "projects/allocation_request.html",
        {"form": form, "project": project, "pending": pending},
        status=400 if request.method == "POST" else 200,
    )


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def allocation_request_new(request: HttpRequest) -> HttpResponse:
    return _request_page(request, project=None)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def allocation_request_more(request: HttpRequest, project_id: int) -> HttpResponse:
    membership = (
        ProjectMembership.objects.filter(
            project_id=project_id,
            user=request.user,
            role__in=[ProjectMembership.ROLE_PI, ProjectMembership.ROLE_MANAGER],
        )
        .select_related("project")
        .first()
    )
    if membership is None:
        raise Http404("No such project of yours.")
    return _request_page(request, project=membership.project)
