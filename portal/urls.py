from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # The chat: the home page, its conversations and /api/conversations/.
    path("", include("chat.urls")),
    # The operations dashboard (ops), before admin/ claims the path.
    path("", include("ops.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    # Settings > Account and /api/keys/ (API keys).
    path("", include("accounts.urls")),
    # Settings > Access (service class requests).
    path("", include("catalog.urls")),
    # Settings > Usage (usage, quota, CSV export).
    path("", include("usage.urls")),
]
