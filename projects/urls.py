from django.urls import path

from projects import request_views, views

urlpatterns = [
    path("settings/projects/", views.settings_projects, name="settings_projects"),
    path(
        "settings/projects/request/",
        request_views.allocation_request_new,
        name="settings_project_request",
    ),
    path(
        "settings/projects/<int:project_id>/request/",
        request_views.allocation_request_more,
        name="settings_project_request_more",
    ),
    path(
        "settings/projects/<int:project_id>/",
        views.settings_project,
        name="settings_project",
    ),
    path(
        "settings/projects/<int:project_id>/export.csv",
        views.settings_project_export,
        name="settings_project_export",
    ),
    path(
        "settings/projects/<int:project_id>/report/",
        views.settings_project_report,
        name="settings_project_report",
    ),
    path(
        "settings/projects/<int:project_id>/invitations/",
        views.project_invite,
        name="settings_project_invite",
    ),
    path(
        "settings/projects/<int:project_id>/invitations/<int:invitation_id>/revoke/",
        views.project_invitation_revoke,
        name="settings_project_invitation_revoke",
    ),
    path(
        "settings/projects/<int:project_id>/members/<int:user_id>/remove/",
        views.project_member_remove_view,
        name="settings_project_member_remove",
    ),
    path(
        "settings/projects/<int:project_id>/members/<int:user_id>/role/",
        views.project_member_role,
        name="settings_project_member_role",
    ),
    path(
        "settings/projects/<int:project_id>/keys/",
        views.project_key_create_view,
        name="settings_project_key_create",
    ),
    path(
        "projects/invitations/<str:token>/",
        views.project_invitation,
        name="project_invitation",
    ),
]
