from allauth.account.decorators import secure_admin_login
from django.contrib import admin

admin.site.site_header = "Portico administration"
admin.site.site_title = "Portico"
admin.site.index_title = "Operate Portico"

# Django's own admin login form knows nothing of allauth: no failed-login limit
# (ACCOUNT_RATE_LIMITS) and no two-factor step. Visitors who are not signed in
# are sent to allauth's login with ?next= pointing back into the admin; signed-in
# users who are not active staff get a 403.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]
