from django.contrib import admin
from django.urls import path

from ops import views

urlpatterns = [
    # admin_view: staff only (others go to the admin login), never cached; the
    # view itself asks for ops.view_dashboard.
    path(
        "admin/dashboard/",
        admin.site.admin_view(views.dashboard),
        name="ops-dashboard",
    ),
    # Staff analytics over any range of days, from the usage rollups; the same
    # permission as the dashboard.
    path(
        "admin/analytics/",
        admin.site.admin_view(views.analytics),
        name="ops-analytics",
    ),
]
