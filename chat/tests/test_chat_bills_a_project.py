"""A conversation can bill one of the user's projects: its turns carry the
project into the usage record; a member who left cannot bill it any more."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from chat.tests.conftest import ChatRig
from projects.selectors import project_used
from projects.services import project_create, project_member_remove, project_member_set
from tests.factories import user_make
from usage.rollups import usage_rollup

STREAM = "/chat/stream/"


def _project(chat: ChatRig):  # type: ignore[no-untyped-def]
    pi = user_make(username="pi")
    project = project_create(
        name="Climate",
        pi=pi,
        allocation_tokens=1_000_000,
        ends_on=timezone.localdate() + timedelta(days=30),
    )
    project_member_set(project=project, user=chat.alice)
    return project


def test_a_conversation_billing_a_project_records_the_project(chat: ChatRig) -> None:
    project = _project(chat)
    with chat.session(chat.alice) as client:
        created = client.post(
            "/api/conversations/", json={"model": "fake-chat", "project": project.pk}
        )
        assert created.status_code == 201, created.text
        assert created.json()["project"] == project.pk
        response = client.post(
            STREAM, json={"conversation": created.json()["id"], "content": "Hello"}
        )
    assert response.status_code == 200, response.text
    record = chat.proxy.usage_record(response.headers["x-request-id"])
    assert record.project_id == project.pk and record.client == "browser"
    # The project's pages count the turn, before and after the rollup.
    today = timezone.localdate()
    window = {"first_day": today, "end_day": today + timedelta(days=1)}
    used = project_used(project_id=project.pk, **window)
    assert used == record.weighted_tokens > 0
    usage_rollup()
    assert project_used(project_id=project.pk, **window) == used


def test_only_members_may_choose_a_project_and_leavers_are_refused(
    chat: ChatRig,
) -> None:
    project = _project(chat)
    conversation = chat.conversation()
    with chat.session(user_make(username="outsider")) as client:
        refused = client.post(
            "/api/conversations/", json={"model": "fake-chat", "project": project.pk}
        )
    assert refused.status_code == 400, refused.text
    assert "project" in refused.json()["error"]["fields"]
    conversation.project = project
    conversation.save()
    project_member_remove(project=project, user=chat.alice)
    with chat.session(chat.alice) as client:
        response = client.post(
            STREAM, json={"conversation": conversation.pk, "content": "Hello"}
        )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "project_membership_required"
