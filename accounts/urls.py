from django.urls import path

from accounts import api, views

urlpatterns = [
    path("settings/account/", views.settings_account, name="settings_account"),
    path(
        "settings/account/time-zone/",
        views.time_zone_set_view,
        name="settings_time_zone",
    ),
    path(
        "settings/account/keys/", views.apikey_create_view, name="settings_key_create"
    ),
    path(
        "settings/account/keys/new/",
        views.apikey_created_view,
        name="settings_key_created",
    ),
    path(
        "settings/account/keys/<int:key_id>/revoke/",
        views.apikey_revoke_view,
        name="settings_key_revoke",
    ),
    path(
        "settings/account/keys/<int:key_id>/roll/",
        views.apikey_roll_view,
        name="settings_key_roll",
    ),
    path(
        "accounts/verification/resend/",
        views.email_verification_resend_view,
        name="account_verification_resend",
    ),
    path("api/keys/", api.ApiKeyListView.as_view(), name="api_keys"),
    path("api/keys/<int:key_id>/", api.ApiKeyDetailView.as_view(), name="api_key"),
    path(
        "api/keys/<int:key_id>/revoke/",
        api.ApiKeyRevokeView.as_view(),
        name="api_key_revoke",
    ),
    path(
        "api/keys/<int:key_id>/roll/",
        api.ApiKeyRollView.as_view(),
        name="api_key_roll",
    ),
]
