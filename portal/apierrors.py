"""The JSON API's one error shape (/api/...): every DRF view answers
`{"error": {"code", "message", ...}}`, set once in REST_FRAMEWORK; Django's
own 400, 404 and 500 answer in it too under /api/ (portal/urls.py handlers).

An exception may add fields of its own through an `error_fields()` method
(a link to follow, say), so that no app needs a handler of its own.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler

# The error shape in the OpenAPI description (drf-spectacular, /api/schema/):
# one component, shared by every APIView that documents its errors.
API_ERROR_SCHEMA = inline_serializer(
    name="ApiError",
    fields={
        "error": inline_serializer(
            name="ApiErrorBody",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(
                    child=serializers.ListField(child=serializers.CharField()),
                    required=False,
                ),
            },
        )
    },
)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        # A service's ValidationError: the same answer as a serializer's.
        exc = ValidationError(exc.message_dict if exc.error_dict else exc.messages)
    response = exception_handler(exc, context)
    if response is None:
        return None
    response.data = {"error": _error_body(exc, response.status_code)}
    return response


def _error_body(exc: Exception, status_code: int) -> dict[str, Any]:
    if isinstance(exc, ValidationError):
        detail = exc.detail
        return {
            "code": "invalid",
            "message": "Invalid input.",
            "fields": detail
            if isinstance(detail, dict)
            else {"non_field_errors": detail},
        }
    if isinstance(exc, APIException):
        codes = exc.get_codes()
        error: dict[str, Any] = {
            "code": codes if isinstance(codes, str) else "error",
            "message": str(exc.detail),
        }
        extra = getattr(exc, "error_fields", None)
        if callable(extra):
            error.update(extra())
        return error
    # Http404 and PermissionDenied, turned into responses by DRF.
    if status_code == status.HTTP_403_FORBIDDEN:
        return {"code": "permission_denied", "message": "Not allowed."}
    return {"code": "not_found", "message": "Not found."}


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, with nesting too deep for Python's parser answered
    as a 400 (ParseError) instead of a crash."""

    def parse(
        self, stream: Any, media_type: Any = None, parser_context: Any = None
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None


def _json_for_api(
    request: HttpRequest, status_code: int, code: str, message: str
) -> HttpResponse | None:
    if not request.path.startswith("/api/"):
        return None
    return JsonResponse(
        {"error": {"code": code, "message": message}}, status=status_code
    )


def api_bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 400 (a body over DATA_UPLOAD_MAX_MEMORY_SIZE, a bad Host...) in
    the JSON API's shape under /api/, Django's page elsewhere."""
    return _json_for_api(
        request, 400, "bad_request", "The request could not be read."
    ) or defaults.bad_request(request, exception)


def api_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _json_for_api(
        request, 404, "not_found", "Not found."
    ) or defaults.page_not_found(request, exception)


def api_server_error(request: HttpRequest) -> HttpResponse:
    return _json_for_api(
        request, 500, "server_error", "The server failed to handle this request."
    ) or defaults.server_error(request)
