"""The JSON API's one error shape (/api/...): every DRF view answers
`{"error": {"code", "message", ...}}`, set once in REST_FRAMEWORK.

An exception may add fields of its own through an `error_fields()` method
(a link to follow, say), so that no app needs a handler of its own.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler


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
