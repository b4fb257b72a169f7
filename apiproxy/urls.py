from django.urls import path

from apiproxy import views

urlpatterns = [
    path("settings/access/", views.settings_access, name="settings_access"),
]
