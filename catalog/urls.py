from django.urls import path

from catalog import views

urlpatterns = [
    path("settings/access/", views.settings_access, name="settings_access"),
]
