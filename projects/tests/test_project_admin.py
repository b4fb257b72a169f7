"""Projects in Django admin, as staff use them: grants and their changes keep
the history, memberships taken out revoke keys, the history is read-only."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.test import Client
from django.urls import reverse

from accounts.models import User
from projects.audit import projects_audit_register
from projects.models import AllocationChange, Project, ProjectMembership
from projects.services import project_create, project_key_create, project_member_set
from tests.auditprobe import admin_form_data, admin_save, staff_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]


@pytest.fixture(autouse=True)
def _audited() -> None:
    """What ProjectsConfig.ready registers (idempotent)."""
    projects_audit_register()


@pytest.fixture
def admin_(staff: User) -> Client:
    return staff_client(staff)


@pytest.fixture
def project(alice: User) -> Project:
    return project_create(
        name="Climate",
        pi=alice,
        allocation_tokens=1_000_000,
        starts_on=date(2030, 1, 1),
        ends_on=date(2030, 6, 30),
    )


def change_url(project: Project) -> str:
    return reverse("admin:projects_project_change", args=[project.pk])


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:projects_project_changelist",
        "admin:projects_project_add",
        "admin:projects_projectmembership_changelist",
        "admin:projects_projectmembership_add",
        "admin:projects_allocationchange_changelist",
    ],
)
def test_project_pages_render_for_staff(admin_: Client, project, url_name) -> None:  # type: ignore[no-untyped-def]
    assert admin_.get(reverse(url_name)).status_code == 200


def test_the_list_shows_allocation_window_end_and_members(
    admin_: Client, project: Project, bob: User
) -> None:
    project_member_set(project=project, user=bob)
    page = admin_.get(reverse("admin:projects_project_changelist"))
    row = page.context["cl"].result_list[0]
    assert row.member_count == 2
    text = page.content.decode()
    assert "1,000,000" in text and "whole period" in text
    assert admin_.get(change_url(project)).status_code == 200


def test_a_change_of_the_grant_goes_through_allocation_set(
    admin_: Client, staff: User, project: Project
) -> None:
    admin_save(
        admin_,
        change_url(project),
        {
            "allocation_tokens": "2500000",
            "ends_on": "2030-12-31",
            "reason": "renewed by the board",
        },
    )
    project.refresh_from_db()
    assert project.allocation_tokens == 2_500_000
    assert project.ends_on == date(2030, 12, 31)
    latest = AllocationChange.objects.filter(project=project).first()
    assert latest is not None
    assert (latest.allocation_tokens, latest.ends_on) == (2_500_000, date(2030, 12, 31))
    assert (latest.changed_by, latest.reason) == (staff, "renewed by the board")
    assert AllocationChange.objects.filter(project=project).count() == 2
    assert LogEntry.objects.get_for_object(project).filter(actor=staff).exists()


def test_a_new_start_or_instalments_are_kept_in_the_history_too(
    admin_: Client, project: Project
) -> None:
    admin_save(admin_, change_url(project), {"starts_on": "2030-02-01"})
    latest = AllocationChange.objects.filter(project=project).first()
    assert latest is not None and latest.starts_on == date(2030, 2, 1)
    assert "starts_on" in latest.reason
    admin_save(admin_, change_url(project), {"dedicated": True})
    assert Project.objects.get().dedicated
    assert AllocationChange.objects.filter(project=project).count() == 2
    admin_save(admin_, change_url(project), {"member_cap_tokens": "100"})
    admin_save(admin_, change_url(project), {"member_cap_tokens": ""})
    assert Project.objects.get().member_cap_tokens is None
    assert AllocationChange.objects.filter(project=project).count() == 4


def test_an_end_before_the_start_is_refused_and_nothing_changes(
    admin_: Client, project: Project
) -> None:
    url = change_url(project)
    data = admin_form_data(admin_.get(url))
    data["ends_on"] = "2029-01-01"
    assert admin_.post(url, data).status_code == 200  # the form again, with errors
    assert AllocationChange.objects.filter(project=project).count() == 1


def test_a_project_added_in_admin_has_its_pi_and_grant(
    admin_: Client, staff: User, alice: User
) -> None:
    url = reverse("admin:projects_project_add")
    data = admin_form_data(admin_.get(url))
    data.update(
        name="Glaciers",
        pi=alice.pk,
        allocation_tokens="5000",
        starts_on="2030-01-01",
        ends_on="2030-03-31",
        monthly_instalments="on",
    )
    response = admin_.post(url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    project = Project.objects.get(name="Glaciers")
    assert ProjectMembership.objects.get(project=project).role == "pi"
    grant = AllocationChange.objects.get(project=project)
    assert (grant.changed_by, grant.reason) == (staff, "granted in admin")


def _row_prefix(data: dict[str, Any], membership: ProjectMembership) -> str:
    """The membership inline's form prefix of `membership`'s row."""
    return next(
        name.removesuffix("-id")
        for name, value in data.items()
        if name.startswith("memberships-")
        and name.endswith("-id")
        and value == membership.pk
    )


def test_removing_a_member_inline_revokes_their_project_keys(
    admin_: Client, project: Project, bob: User
) -> None:
    membership = project_member_set(project=project, user=bob)
    issued = project_key_create(project=project, user=bob, name="hpc")
    url = change_url(project)
    data = admin_form_data(admin_.get(url))
    data[f"{_row_prefix(data, membership)}-DELETE"] = "on"
    assert admin_.post(url, data).status_code == 302
    assert not ProjectMembership.objects.filter(user=bob).exists()
    issued.key.refresh_from_db()
    assert issued.key.revoked_at is not None


def test_the_pi_cannot_be_removed_inline(
    admin_: Client, project: Project, alice: User
) -> None:
    url = change_url(project)
    data = admin_form_data(admin_.get(url))
    pi_row = ProjectMembership.objects.get(user=alice)
    data[f"{_row_prefix(data, pi_row)}-DELETE"] = "on"
    page = admin_.post(url, data)
    assert page.status_code == 200
    assert "cannot be removed" in page.content.decode()
    assert ProjectMembership.objects.filter(user=alice).exists()


def test_a_member_added_inline_goes_through_the_service(
    admin_: Client, project: Project, bob: User
) -> None:
    url = change_url(project)
    data = admin_form_data(admin_.get(url))
    total = int(data["memberships-TOTAL_FORMS"])
    data["memberships-TOTAL_FORMS"] = str(total + 1)
    data[f"memberships-{total}-user"] = bob.pk
    data[f"memberships-{total}-role"] = "manager"
    assert admin_.post(url, data).status_code == 302
    assert ProjectMembership.objects.get(project=project, user=bob).role == "manager"


def test_deleting_a_membership_revokes_keys(
    admin_: Client, project: Project, bob: User
) -> None:
    membership = project_member_set(project=project, user=bob)
    issued = project_key_create(project=project, user=bob, name="hpc")
    url = reverse("admin:projects_projectmembership_delete", args=[membership.pk])
    assert admin_.post(url, {"post": "yes"}).status_code == 302
    issued.key.refresh_from_db()
    assert issued.key.revoked_at is not None
    assert not ProjectMembership.objects.filter(user=bob).exists()


def test_the_bulk_delete_revokes_keys_and_refuses_the_pi(
    admin_: Client, project: Project, alice: User, bob: User
) -> None:
    membership = project_member_set(project=project, user=bob)
    issued = project_key_create(project=project, user=bob, name="hpc")
    url = reverse("admin:projects_projectmembership_changelist")
    every = list(ProjectMembership.objects.values_list("pk", flat=True))
    action = {"action": "delete_selected", "post": "yes"}
    # A selection that holds a PI is refused as a whole.
    refused = admin_.post(url, {**action, "_selected_action": every})
    assert refused.status_code == 403
    assert ProjectMembership.objects.count() == 2
    response = admin_.post(url, {**action, "_selected_action": [membership.pk]})
    assert response.status_code == 302
    issued.key.refresh_from_db()
    assert issued.key.revoked_at is not None
    assert list(ProjectMembership.objects.values_list("user", flat=True)) == [alice.pk]


def test_the_history_and_the_pi_membership_are_read_only(
    admin_: Client, project: Project, alice: User
) -> None:
    change = AllocationChange.objects.get()
    url = reverse("admin:projects_allocationchange_change", args=[change.pk])
    assert admin_.get(url).status_code == 200  # view only
    delete = reverse("admin:projects_allocationchange_delete", args=[change.pk])
    assert admin_.post(delete, {"post": "yes"}).status_code == 403
    pi_row = ProjectMembership.objects.get(user=alice)
    delete = reverse("admin:projects_projectmembership_delete", args=[pi_row.pk])
    assert admin_.post(delete, {"post": "yes"}).status_code == 403
    delete = reverse("admin:projects_project_delete", args=[project.pk])
    assert admin_.post(delete, {"post": "yes"}).status_code == 403
    assert AllocationChange.objects.count() == 1
