from django.urls import path

from usage import views

urlpatterns = [
    path("settings/usage/", views.settings_usage, name="settings_usage"),
    path(
        "settings/usage/export.csv",
        views.settings_usage_export,
        name="settings_usage_export",
    ),
]
