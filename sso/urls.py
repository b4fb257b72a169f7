from django.urls import path

from sso import views

urlpatterns = [
    path("", views.institution_choose, name="sso_institutions"),
    path("search/", views.institution_search_json, name="sso_institution_search"),
    path("start/", views.institution_start, name="sso_institution_start"),
    path("reauthenticate/", views.sso_reauthenticate, name="sso_reauthenticate"),
]
