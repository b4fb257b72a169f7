"""Settings > Projects: a user's projects; for the PI and managers a project's
members, invitations, burn-down and usage by member and model; for members
the remaining allocation and their own use. Non-members get 404 for every
project URL, staff included (staff use the admin).

Thin views: forms in, selectors and services out. The invitation link and a
new key's raw value appear only in the response to the POST that made them.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from allauth.account.decorators import reauthentication_required
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import User
from accounts.reauth import reauthentication_due
from accounts.views import apikey_show_once, key_expiry_end_of_day
from projects import selectors as read
from projects.burndown import burndown_compute, burndown_svg
from projects.forms import (
    ROLE_LABELS,
    InvitationForm,
    MemberRoleForm,
    PeriodForm,
    ProjectKeyForm,
    ReportMonthForm,
)
from projects.invitations import (
    invitation_accept,
    invitation_create,
    invitation_decline,
    invitation_revoke,
)
from projects.models import ProjectInvitation, ProjectMembership
from projects.reportpdf import report_pdf
from projects.reports import month_report, project_usage_csv_write
from projects.services import (
    project_key_create,
    project_member_remove,
    project_member_set,
)
from projects.windows import next_tokens_at


def _membership(request: HttpRequest, project_id: int) -> ProjectMembership:
    membership = read.membership_get(user=request.user, project_id=project_id)  # type: ignore[arg-type]
    if membership is None:
        raise Http404("No such project")
    return membership


def _own_only(membership: ProjectMembership) -> int | None:
    """Members see their own use only; the PI and managers everyone's."""
    return None if read.manages(membership) else membership.user_id


def _period(request: HttpRequest, use: read.WindowUse) -> tuple[PeriodForm, date, date]:
    project = use.project
    default = (use.first_day or project.starts_on, use.last_day or project.ends_on)
    form = PeriodForm(
        request.GET or None, initial={"from": default[0], "to": default[1]}
    )
    first, last = form.period(default=default)
    return form, first, last


def _burndown(use: read.WindowUse, now: datetime) -> dict[str, object]:
    if use.window is None or use.first_day is None or use.last_day is None:
        return {}
    end_day = use.last_day + timedelta(days=1)
    daily = read.daily_use(
        project=use.project, first_day=use.first_day, end_day=end_day
    )
    burndown = burndown_compute(
        daily=daily,
        first_day=use.first_day,
        end_day=end_day,
        today=timezone.localdate(now),
        limit=use.window.limit,
    )
    return {"burndown": burndown, "burndown_chart": burndown_svg(burndown)}


def _project_page(
    request: HttpRequest,
    membership: ProjectMembership,
    *,
    invite_form: InvitationForm | None = None,
    key_form: ProjectKeyForm | None = None,
    status: int = 200,
) -> HttpResponse:
    project, now, manager = membership.project, timezone.now(), read.manages(membership)
    use = read.window_use(project=project, now=now)
    period_form, first, last = _period(request, use)
    context: dict[str, object] = {
        "project": project,
        "membership": membership,
        "manages": manager,
        "is_pi": membership.role == ProjectMembership.ROLE_PI,
        "use": use,
        "next_tokens_on": next_tokens_at(read.project_terms(project=project), now),
        "period_form": period_form,
        "usage": read.period_usage(
            project=project,
            first_day=first,
            last_day=last,
            user_id=_own_only(membership),
        ),
        "query": request.GET.urlencode(),
        "key_form": key_form or ProjectKeyForm(),
        "my_keys": read.project_keys_for_user(project=project, user=membership.user),
        "this_month": f"{timezone.localdate(now):%Y-%m}",
    }
    if project.member_cap_tokens:
        context["my_use"] = read.window_use(
            project=project, now=now, user_id=membership.user_id
        )
    if manager:
        roles = read.roles_to_invite(actor=membership)
        context.update(_burndown(use, now))
        context["members"] = [
            (m, read.may_remove(actor=membership, target=m))
            for m in read.member_list(project=project)
        ]
        context["invitations"] = read.invitation_pending_list(project=project, now=now)
        context["invite_form"] = invite_form or InvitationForm(roles=roles)
        context["role_form"] = MemberRoleForm()
    return render(request, "projects/settings_project.html", context, status=status)


@login_required
@require_http_methods(["GET", "HEAD"])
def settings_projects(request: HttpRequest) -> HttpResponse:
    rows = read.project_list_for_user(user=request.user, now=timezone.now())  # type: ignore[arg-type]
    return render(
        request,
        "projects/settings_projects.html",
        {"rows": rows, "today": timezone.localdate()},
    )


@never_cache
@login_required
@require_http_methods(["GET", "HEAD"])
def settings_project(request: HttpRequest, project_id: int) -> HttpResponse:
    return _project_page(request, _membership(request, project_id))


def _manager(request: HttpRequest, project_id: int) -> ProjectMembership:
    membership = _membership(request, project_id)
    if not read.manages(membership):
        raise PermissionDenied("Only the PI and managers manage members.")
    return membership


@never_cache
@login_required
@require_POST
def project_invite(request: HttpRequest, project_id: int) -> HttpResponse:
    membership = _manager(request, project_id)
    form = InvitationForm(request.POST, roles=read.roles_to_invite(actor=membership))
    if form.is_valid():
        path = reverse("project_invitation", kwargs={"token": "0"}).removesuffix("0/")
        base = f"{settings.SITE_URL}{path}" if settings.SITE_URL else None
        try:
            sent = invitation_create(
                project=membership.project,
                invited_by=membership,
                link_base=base or request.build_absolute_uri(path),
                **form.cleaned_data,
            )
        except ValidationError as error:
            for name, errors in error.message_dict.items():
                form.add_error(name if name in form.fields else None, errors)
        else:
            return render(
                request,
                "projects/invitation_sent.html",
                {"project": membership.project, "sent": sent},
            )
    return _project_page(request, membership, invite_form=form, status=400)


@login_required
@require_POST
def project_invitation_revoke(
    request: HttpRequest, project_id: int, invitation_id: int
) -> HttpResponse:
    membership = _manager(request, project_id)
    invitation = ProjectInvitation.objects.filter(
        project=membership.project, pk=invitation_id
    ).first()
    if invitation is None:
        raise Http404("No such invitation")
    try:
        invitation_revoke(invitation=invitation)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(
            request,
            _("Withdrew the invitation for %(invitee)s.")
            % {"invitee": invitation.invitee},
        )
    return redirect("settings_project", project_id=project_id)


def _target(membership: ProjectMembership, user_id: int) -> ProjectMembership:
    target = (
        ProjectMembership.objects.select_related("user")
        .filter(project=membership.project, user_id=user_id)
        .first()
    )
    if target is None:
        raise Http404("No such member")
    return target


@login_required
@require_POST
def project_member_remove_view(
    request: HttpRequest, project_id: int, user_id: int
) -> HttpResponse:
    membership = _manager(request, project_id)
    target = _target(membership, user_id)
    if not read.may_remove(actor=membership, target=target):
        raise PermissionDenied("Only the PI removes managers; nobody removes the PI.")
    stopped = project_member_remove(project=membership.project, user=target.user)
    messages.success(
        request,
        ngettext(
            "Removed %(name)s; %(count)d project key stopped.",
            "Removed %(name)s; %(count)d project keys stopped.",
            stopped,
        )
        % {"name": target.user.get_username(), "count": stopped},
    )
    return redirect("settings_project", project_id=project_id)


@login_required
@require_POST
def project_member_role(
    request: HttpRequest, project_id: int, user_id: int
) -> HttpResponse:
    membership = _membership(request, project_id)
    if membership.role != ProjectMembership.ROLE_PI:
        raise PermissionDenied("Only the PI changes roles.")
    target = _target(membership, user_id)
    form = MemberRoleForm(request.POST)
    if not form.is_valid() or target.role == ProjectMembership.ROLE_PI:
        messages.error(
            request, _("Choose manager or member for someone other than the PI.")
        )
    else:
        project_member_set(
            project=membership.project, user=target.user, role=form.cleaned_data["role"]
        )
        messages.success(
            request,
            _("%(name)s is now a %(role)s.")
            % {
                "name": target.user.get_username(),
                "role": ROLE_LABELS[form.cleaned_data["role"]],
            },
        )
    return redirect("settings_project", project_id=project_id)


@never_cache
@login_required
@require_POST
@reauthentication_required(enabled=reauthentication_due)
def project_key_create_view(request: HttpRequest, project_id: int) -> HttpResponse:
    membership = _membership(request, project_id)
    form = ProjectKeyForm(request.POST)
    if form.is_valid():
        expires_on = form.cleaned_data["expires_on"]
        try:
            issued = project_key_create(
                project=membership.project,
                user=membership.user,
                name=form.cleaned_data["name"],
                expires_at=key_expiry_end_of_day(expires_on) if expires_on else None,
            )
        except ValidationError as error:
            for name, errors in error.message_dict.items():
                target = "expires_on" if name == "expires_at" else name
                form.add_error(target if target in form.fields else None, errors)
        else:
            # Post/redirect/get, as for personal keys: a reload shows nothing
            # again and makes no second key.
            return apikey_show_once(request, issued=issued)
    return _project_page(request, membership, key_form=form, status=400)


@never_cache
@login_required
@require_http_methods(["GET", "HEAD"])
def settings_project_export(request: HttpRequest, project_id: int) -> HttpResponse:
    """The page's usage by member and by model over its period, as CSV."""
    membership = _membership(request, project_id)
    project = membership.project
    use = read.window_use(project=project, now=timezone.now())
    _, first, last = _period(request, use)
    usage = read.period_usage(
        project=project, first_day=first, last_day=last, user_id=_own_only(membership)
    )
    name = f"project-{project.pk}-{first:%Y%m%d}-{last:%Y%m%d}.csv"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    project_usage_csv_write(project=project, usage=usage, out=response)
    return response


@never_cache
@login_required
@require_http_methods(["GET", "HEAD"])
def settings_project_report(request: HttpRequest, project_id: int) -> HttpResponse:
    """A month on one printable page: allocation, use, by member and model,
    and the allocation's history through that month."""
    membership = _membership(request, project_id)
    month = ReportMonthForm(request.GET or None).first_day(default=timezone.localdate())
    report = month_report(
        project=membership.project, month=month, user_id=_own_only(membership)
    )
    if request.GET.get("format") == "pdf":
        pdf = report_pdf(
            project=membership.project, report=report, generated_at=timezone.now()
        )
        response = HttpResponse(pdf, content_type="application/pdf")
        name = f"project-{membership.project.pk}-{report.month:%Y-%m}.pdf"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    context = {
        "project": membership.project,
        "membership": membership,
        "manages": read.manages(membership),
        "report": report,
        "generated_at": timezone.now(),
    }
    return render(request, "projects/report.html", context)


def _invitation_page(
    request: HttpRequest, invitation: ProjectInvitation | None, state: str, status: int
) -> HttpResponse:
    context = {"invitation": invitation, "state": state}
    return render(request, "projects/invitation.html", context, status=status)


@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def project_invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The invitee's page: accept or decline. Unknown, used, withdrawn and
    expired links, and links for another account, each say so plainly."""
    invitation = read.invitation_by_token(token=token)
    if invitation is None:
        return _invitation_page(request, None, "unknown", 404)
    state = invitation.state_at(timezone.now())
    if state != "pending":
        return _invitation_page(request, invitation, state, 410)
    user: User = request.user  # type: ignore[assignment]
    if not read.invitation_is_for(invitation=invitation, user=user):
        return _invitation_page(request, invitation, "wrong_account", 403)
    if request.method != "POST":
        return _invitation_page(request, invitation, state, 200)
    project = invitation.project
    try:
        if request.POST.get("answer") == "accept":
            invitation_accept(invitation=invitation, user=user)
            messages.success(
                request, _("You joined %(name)s.") % {"name": project.name}
            )
            return redirect("settings_project", project_id=project.pk)
        invitation_decline(invitation=invitation, user=user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("project_invitation", token=token)
    messages.success(
        request,
        _("You declined the invitation to %(name)s.") % {"name": project.name},
    )
    return redirect("settings_projects")
