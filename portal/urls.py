from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView

from sso import views as sso_views

urlpatterns = [
    # The chat: the home page, its conversations and /api/conversations/.
    path("", include("chat.urls")),
    # The operations dashboard (ops), before admin/ claims the path.
    path("", include("ops.urls")),
    path("admin/", admin.site.urls),
    # set_language: Settings > Account's language switcher posts here.
    path("i18n/", include("django.conf.urls.i18n")),
    # The chat's strings in the page's language (gettext() in static/chat/),
    # a same-origin script, as the Content-Security-Policy wants.
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript_catalog"),
    # "Choose your institution" (sso): search, start a sign-in, sign in again.
    path("accounts/institutions/", include("sso.urls")),
    path(
        "accounts/saml/<str:organization_slug>/acs/finish/",
        sso_views.saml_finish_acs,
        name="saml_finish_acs",
    ),
    path(
        "accounts/oidc/<str:provider_id>/login/callback/",
        sso_views.oidc_callback,
        name="openid_connect_callback",
    ),
    path("accounts/", include("allauth.urls")),
    # Settings > Account and /api/keys/ (API keys).
    path("", include("accounts.urls")),
    # Settings > Access (service class requests).
    path("", include("catalog.urls")),
    # Settings > Usage (usage, quota, CSV export).
    path("", include("usage.urls")),
    # Settings > Projects (members, invitations, usage, reports, project keys).
    path("", include("projects.urls")),
    # The OpenAPI description of /api/ (drf-spectacular), for logged-in users.
    # The proxy's /v1/ is described in docs/openapi-v1.yaml.
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
]

# Under /api/ Django's own errors answer in the JSON API's shape too.
handler400 = "portal.apierrors.api_bad_request"
handler404 = "portal.apierrors.api_not_found"
handler500 = "portal.apierrors.api_server_error"
