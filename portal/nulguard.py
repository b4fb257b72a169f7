"""Refuse NUL characters in a request's path and query string.

PostgreSQL cannot store or compare text holding NUL: a `?q=%00` reaching a
search (the admin's, the conversation list's) raised from the database driver
and answered 500. Forms and DRF fields already refuse NUL in bodies; this
closes the query string for every view at once.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse


class RejectNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values)
            for key, values in request.GET.lists()
        ):
            message = "The request's address holds a NUL character."
            if request.path.startswith("/api/"):
                return JsonResponse(
                    {"error": {"code": "invalid", "message": message}}, status=400
                )
            return HttpResponseBadRequest(message)
        return self.get_response(request)
