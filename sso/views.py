"""Choose your institution: search, start a sign-in, sign in again.

Thin: each view parses the request, asks a selector, and renders or hands the
browser to allauth's provider (which redirects to the IdP).
"""

from __future__ import annotations

from allauth.account.internal.decorators import login_not_required
from allauth.account.utils import get_next_redirect_url
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView
from allauth.socialaccount.providers.saml import views as allauth_saml_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, Resolver404, resolve, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from sso.adapter import SESSION_CHOSEN_PROVIDER
from sso.providers import SignatureCheckingOIDCAdapter
from sso.selectors import (
    institution_names,
    institution_search,
    sign_in_choice_get,
    sign_in_options,
)

SEARCH_RESULTS = 10


@login_not_required
def oidc_callback(request: HttpRequest, provider_id: str) -> HttpResponse:
    """allauth's OpenID Connect callback, with the ID token's signature
    always checked (sso.providers.SignatureCheckingOIDCAdapter)."""
    try:
        adapter = SignatureCheckingOIDCAdapter(request, provider_id)
        return OAuth2CallbackView.adapter_view(adapter)(request)
    except SocialApp.DoesNotExist:
        raise Http404("No such provider") from None


@login_not_required
def saml_finish_acs(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """allauth's last SAML step, with its refusal of a response no sign-in in
    this browser asked for (a replay, an IdP-initiated login) shown as the
    sign-in error page rather than a bare 403."""
    try:
        return allauth_saml_views.finish_acs(
            request, organization_slug=organization_slug
        )
    except PermissionDenied:
        return render(request, "socialaccount/authentication_error.html", status=403)


@require_GET
def institution_search_json(request: HttpRequest) -> JsonResponse:
    found = institution_search(query=request.GET.get("q", ""), limit=SEARCH_RESULTS)
    return JsonResponse(
        {
            "results": [
                {"id": c.provider_id, "name": c.name, "domains": list(c.domains)}
                for c in found
            ]
        }
    )


@require_GET
def institution_choose(request: HttpRequest) -> HttpResponse:
    """The search without JavaScript: a results page of sign-in buttons."""
    query = request.GET.get("q", "")
    return render(
        request,
        "sso/institutions.html",
        {
            "query": query,
            "results": institution_search(query=query, limit=SEARCH_RESULTS),
            "options": sign_in_options(),
            "next": get_next_redirect_url(request) or "",
            # "connect": add this institution to the signed-in account.
            "process": "connect"
            if request.user.is_authenticated and request.GET.get("process") == "connect"
            else "login",
        },
    )


@require_POST
@never_cache
def institution_start(request: HttpRequest) -> HttpResponse:
    """Hand the browser to the chosen provider. POST (with CSRF), like
    allauth's own login buttons, so no other site can start a sign-in."""
    choice = sign_in_choice_get(provider_id=request.POST.get("provider", ""))
    if choice is None:
        raise Http404("No such institution")
    request.session[SESSION_CHOSEN_PROVIDER] = choice.provider_id
    provider = get_adapter(request).get_provider(request, choice.provider_id)
    return provider.redirect_from_request(request)


def _resume_url(request: HttpRequest) -> str:
    """Where to go after signing in again: back where the user was, except a
    form's POST-only address (the key form), which a redirect cannot repeat."""
    url = get_next_redirect_url(request) or ""
    try:
        if url and resolve(url.split("?")[0]).url_name == "settings_key_create":
            url = ""
    except Resolver404:
        url = ""
    try:
        return url or reverse("settings_account")
    except NoReverseMatch:
        return "/"


@login_required
@require_GET
def sso_reauthenticate(request: HttpRequest) -> HttpResponse:
    """Users without a password confirm it is them by signing in through their
    provider again (allauth offers only passwords and second factors)."""
    provider_ids = list(
        request.user.socialaccount_set.values_list("provider", flat=True)
    )
    names = institution_names(provider_ids)
    providers = [
        {"id": pid, "name": names.get(pid, pid)}
        for pid in provider_ids
        if sign_in_choice_get(provider_id=pid) is not None
    ]
    return render(
        request,
        "sso/reauthenticate.html",
        {"providers": providers, "next": _resume_url(request)},
    )
