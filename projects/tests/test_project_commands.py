"""The project commands as operators run them: createproject, projectmember,
setallocation, issuekey --project and exportusage --project."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime

import pytest
from auditlog.models import LogEntry
from django.core.management import CommandError, call_command

from accounts.models import ApiKey, User
from accounts.selectors import apikey_authenticate
from projects.audit import projects_audit_register
from projects.models import AllocationChange, Project, ProjectMembership
from projects.services import project_create, project_key_create, project_member_set
from tests.factories import usage_record_make

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]


@pytest.fixture(autouse=True)
def _audited() -> None:
    """What ProjectsConfig.ready registers (idempotent)."""
    projects_audit_register()


END = "2030-06-30"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def climate(pi: User, **fields: object) -> Project:
    return project_create(
        name="Climate",
        pi=pi,
        allocation_tokens=1_000_000,
        ends_on=date(2030, 6, 30),
        **fields,  # type: ignore[arg-type]
    )


def test_createproject_grants_the_allocation_with_the_pi_as_member(alice) -> None:
    out = run(
        "createproject", "Protein folding", "--pi", "alice", "--tokens", "2000000",
        "--start", "2030-01-01", "--end", END, "--member-cap", "50000",
        "--monthly", "--dedicated", "--reason", "grant 42",
    )  # fmt: skip
    project = Project.objects.get(name="Protein folding")
    assert (project.pi, project.allocation_tokens) == (alice, 2_000_000)
    assert (project.starts_on, project.ends_on) == (date(2030, 1, 1), date(2030, 6, 30))
    assert project.member_cap_tokens == 50_000
    assert project.monthly_instalments and project.dedicated
    assert ProjectMembership.objects.get(project=project).user == alice
    assert AllocationChange.objects.get(project=project).reason == "grant 42"
    assert "2,000,000 weighted tokens" in out and "monthly instalments" in out
    entry = LogEntry.objects.get_for_object(project).get()
    assert entry.actor_email == "system/command:createproject"


def test_createproject_defaults_to_today_and_no_cap(alice) -> None:
    run("createproject", "Climate", "--pi", "alice", "--tokens", "10", "--end", END)
    project = Project.objects.get()
    assert project.member_cap_tokens is None
    assert not project.monthly_instalments and not project.dedicated


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pi", "nobody", "--tokens", "1", "--end", END], "No user 'nobody'"),
        (["--pi", "alice", "--tokens", "-5", "--end", END], "negative"),
        (["--pi", "alice", "--tokens", "lots", "--end", END], "not a number"),
        (["--pi", "alice", "--tokens", "1", "--end", "30/06/2030"], "not a date"),
        (["--pi", "alice", "--tokens", "1", "--end", "2030-02-30"], "not a date"),
        (
            ["--pi", "alice", "--tokens", "1", "--start", END, "--end", "2030-01-01"],
            "--end: The end date is before the start",
        ),
        (["--pi", "alice", "--tokens", "1"], "--end"),
        (
            ["--pi", "alice", "--tokens", "1", "--end", END, "--member-cap", "-1"],
            "negative",
        ),
    ],
)
def test_createproject_refusals(alice, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("createproject", "Climate", *args)
    assert not Project.objects.exists()


def test_createproject_refuses_a_name_taken(alice) -> None:
    climate(alice)
    with pytest.raises(CommandError, match=r"NAME: .*already exists"):
        run("createproject", "Climate", "--pi", "alice", "--tokens", "1", "--end", END)


def test_projectmember_adds_changes_the_role_and_removes(alice, bob) -> None:
    project = climate(alice)
    assert "bob is a member of Climate" in run("projectmember", "Climate", "bob")
    out = run("projectmember", "Climate", "bob", "--role", "manager")
    assert "bob is a manager of Climate" in out
    assert ProjectMembership.objects.get(project=project, user=bob).role == "manager"
    issued = project_key_create(project=project, user=bob, name="cluster job")
    out = run("projectmember", "Climate", "bob", "--remove")
    assert "Removed bob from Climate; 1 project key(s) revoked" in out
    assert not ProjectMembership.objects.filter(project=project, user=bob).exists()
    issued.key.refresh_from_db()
    assert issued.key.revoked_at is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Nowhere", "bob"], "No project named 'Nowhere'"),
        (["Climate", "nobody"], "No user 'nobody'"),
        (["Climate", "alice"], "principal investigator is always a member"),
        (["Climate", "alice", "--remove"], "principal investigator cannot be removed"),
        (["Climate", "charlie", "--remove"], "charlie is not a member of Climate"),
        (["Climate", "bob", "--role", "pi"], "invalid choice"),
        (["Climate", "bob", "--role", "manager", "--remove"], "not both"),
    ],
)
def test_projectmember_refusals(
    alice, bob, charlie, args: list[str], message: str
) -> None:
    climate(alice)
    with pytest.raises(CommandError, match=message):
        run("projectmember", *args)
    assert ProjectMembership.objects.count() == 1


def test_setallocation_changes_the_grant_and_keeps_the_history(alice) -> None:
    project = climate(alice, member_cap_tokens=10)
    out = run(
        "setallocation", "Climate", "--tokens", "3000000", "--end", "2030-12-31",
        "--reason", "renewal",
    )  # fmt: skip
    assert "3,000,000 weighted tokens" in out and "2030-12-31" in out
    project.refresh_from_db()
    assert (project.allocation_tokens, project.ends_on) == (
        3_000_000,
        date(2030, 12, 31),
    )
    assert project.member_cap_tokens == 10  # left out: unchanged
    run("setallocation", "Climate", "--tokens", "3000000", "--member-cap", "0")
    project.refresh_from_db()
    assert project.member_cap_tokens is None
    history = AllocationChange.objects.filter(project=project)
    assert [change.reason for change in history] == ["changed", "renewal", "granted"]
    assert (
        LogEntry.objects.get_for_object(project)
        .filter(actor_email="system/command:setallocation")
        .exists()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Nowhere", "--tokens", "1"], "No project named 'Nowhere'"),
        (["Climate", "--tokens", "-1"], "negative"),
        (["Climate"], "--tokens"),
        (["Climate", "--tokens", "1", "--end", "2020-01-01"], "before the start"),
        (["Climate", "--tokens", "1", "--end", "tomorrow"], "not a date"),
    ],
)
def test_setallocation_refusals(alice, args: list[str], message: str) -> None:
    climate(alice)
    with pytest.raises(CommandError, match=message):
        run("setallocation", *args)
    assert AllocationChange.objects.count() == 1
    assert Project.objects.get().allocation_tokens == 1_000_000


def test_issuekey_project_makes_a_key_that_bills_the_project(alice, bob) -> None:
    project = climate(alice)
    project_member_set(project=project, user=bob)
    raw = run("issuekey", "bob", "--project", "Climate", "--name", "hpc").strip()
    key = apikey_authenticate(raw_key=raw)
    assert key is not None and key.user == bob and key.project_id == project.pk
    assert run("issuekey", "bob").strip() != raw
    assert ApiKey.objects.get(name="issued by operator").project_id is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["charlie", "--project", "Climate"], "'charlie' is not a member of project"),
        (["charlie", "--project", "Nowhere"], "No project named 'Nowhere'"),
        (
            ["dave", "--project", "Climate", "--create-user"],
            "projectmember Climate dave",
        ),
    ],
)
def test_issuekey_project_refuses_non_members(
    alice, charlie, args: list[str], message: str
) -> None:
    climate(alice)
    with pytest.raises(CommandError, match=message):
        run("issuekey", *args)
    assert not ApiKey.objects.exists()
    assert not User.objects.filter(username="dave").exists()


def test_exportusage_project_writes_only_that_projects_records(alice, bob) -> None:
    project = climate(alice)
    other = project_create(
        name="Other", pi=bob, allocation_tokens=1, ends_on=date(2030, 1, 1)
    )
    t0 = datetime(2030, 3, 10, 9, tzinfo=UTC)
    billed = usage_record_make(user=alice, started_at=t0, project_id=project.pk)
    usage_record_make(user=alice, started_at=t0)  # her own budget
    usage_record_make(user=bob, started_at=t0, project_id=other.pk)
    rows = json.loads(run("exportusage", "--project", "Climate", "--format", "json"))
    assert [row["request_id"] for row in rows] == [billed.request_id]
    assert rows[0]["project"] == "Climate"
    every = list(csv.DictReader(io.StringIO(run("exportusage", "--format", "csv"))))
    assert len(every) == 3
    assert sorted(row["project"] for row in every) == ["", "Climate", "Other"]
    with pytest.raises(CommandError, match="No project named 'Nowhere'"):
        run("exportusage", "--project", "Nowhere", "--format", "csv")
