from typing import Any

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.http import HttpRequest

admin.site.site_header = "Portico administration"
admin.site.site_title = "Portico"
admin.site.index_title = "Operate Portico"

# Django's own admin login form knows nothing of allauth: no failed-login limit
# (ACCOUNT_RATE_LIMITS) and no two-factor step. Visitors who are not signed in
# are sent to allauth's login with ?next= pointing back into the admin; signed-in
# users who are not active staff get a 403.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]


# One "Accounts" section on the admin index: Django's auth app (groups, which
# are also the service classes) and allauth's e-mail addresses sit with users
# and keys, where staff look for them. Their own app pages stay as they are.
ACCOUNTS_APP = "accounts"
MERGED_INTO_ACCOUNTS = ("auth", "account")


def app_list_with_accounts_section(apps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    home = next((app for app in apps if app["app_label"] == ACCOUNTS_APP), None)
    if home is None:
        return apps
    merged = [app for app in apps if app["app_label"] in MERGED_INTO_ACCOUNTS]
    home["models"] = sorted(
        [*home["models"], *(model for app in merged for model in app["models"])],
        key=lambda model: model["name"].lower(),
    )
    return [app for app in apps if app not in merged]


_get_app_list = admin.site.get_app_list


def _get_app_list_grouped(
    request: HttpRequest, app_label: str | None = None
) -> list[dict[str, Any]]:
    apps = _get_app_list(request, app_label)
    return apps if app_label else app_list_with_accounts_section(apps)


admin.site.get_app_list = _get_app_list_grouped  # type: ignore[method-assign]
