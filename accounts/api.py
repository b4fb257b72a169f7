"""`/api/keys/`: the same self-service as the Settings page, in JSON.

Session authentication with CSRF (the DRF default in settings), so a key can
never mint keys. Errors read `{"error": {"code", "message", ...}}`; invalid
input adds `fields` ({field: [messages]}). Fields a client may not set (owner,
digest, lookup id, ...) are refused by name rather than silently dropped.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey
from accounts.reauth import reauthentication_due
from accounts.selectors import apikey_get, apikey_list
from accounts.services import (
    MAX_ROLL_GRACE_SECONDS,
    IssuedKey,
    apikey_create,
    apikey_revoke,
    apikey_roll,
)
from portal.apierrors import API_ERROR_SCHEMA


class ApiKeySerializer(serializers.ModelSerializer):
    display = serializers.CharField(read_only=True)
    state = serializers.CharField(read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "display",
            "state",
            "allowed_models",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "rolled_from",
        ]
        read_only_fields = fields


class _StrictSerializer(serializers.Serializer):
    """Refuses fields it does not declare (no silent mass assignment)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if isinstance(self.initial_data, dict):
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise ValidationError(
                    {name: ["This field cannot be set."] for name in unknown}
                )
        return attrs


class ApiKeyCreateSerializer(_StrictSerializer):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        allow_null=True,
        max_length=200,
    )


class ApiKeyRollSerializer(_StrictSerializer):
    grace_seconds = serializers.IntegerField(
        min_value=0, max_value=MAX_ROLL_GRACE_SECONDS, required=False, default=0
    )


class ReauthenticationRequired(APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "reauthentication_required"
    default_detail = (
        "Confirm your password first: creating or rolling a key needs a recent login."
    )

    def error_fields(self) -> dict[str, str]:
        return {"reauthenticate_url": reverse("account_reauthenticate")}


class _KeyApiView(APIView):
    def _key(self, request: Request, key_id: int) -> ApiKey:
        key = apikey_get(user=request.user, key_id=key_id)
        if key is None:
            raise Http404
        return key

    def _require_recent_login(self, request: Request) -> None:
        if reauthentication_due(request._request):
            raise ReauthenticationRequired()

    def _issued(self, issued: IssuedKey) -> Response:
        body = ApiKeySerializer(issued.key).data
        body["key"] = issued.raw
        body["expiry_capped"] = issued.expiry_capped
        return Response(
            body,
            status=status.HTTP_201_CREATED,
            headers={"Cache-Control": "no-store"},
        )


# The OpenAPI description (drf-spectacular, /api/schema/): these APIViews build
# their answers by hand, so the schema is told what they read and write.
_ERROR = API_ERROR_SCHEMA
_ERRORS = {
    400: OpenApiResponse(_ERROR, description="Invalid input (`fields`)."),
    403: OpenApiResponse(
        _ERROR,
        description="Not logged in, CSRF failure, or `reauthentication_required` "
        "(with `reauthenticate_url`).",
    ),
    404: OpenApiResponse(_ERROR, description="No such key of yours."),
}
# A new or rolled key: the record plus the raw key, shown this once.
_ISSUED = {
    "allOf": [
        {"$ref": "#/components/schemas/ApiKey"},
        {
            "type": "object",
            "properties": {
                "key": {"type": "string"},
                "expiry_capped": {"type": "boolean"},
            },
            "required": ["key", "expiry_capped"],
        },
    ]
}


class ApiKeyListView(_KeyApiView):
    @extend_schema(
        operation_id="keys_list",
        responses={
            200: inline_serializer(
                name="ApiKeyList", fields={"data": ApiKeySerializer(many=True)}
            ),
            403: _ERRORS[403],
        },
    )
    def get(self, request: Request) -> Response:
        keys = apikey_list(user=request.user)
        return Response({"data": ApiKeySerializer(keys, many=True).data})

    @extend_schema(
        request=ApiKeyCreateSerializer,
        responses={201: _ISSUED, 400: _ERRORS[400], 403: _ERRORS[403]},
    )
    def post(self, request: Request) -> Response:
        self._require_recent_login(request)
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = apikey_create(user=request.user, **serializer.validated_data)
        return self._issued(issued)


class ApiKeyDetailView(_KeyApiView):
    @extend_schema(
        responses={200: ApiKeySerializer, 403: _ERRORS[403], 404: _ERRORS[404]}
    )
    def get(self, request: Request, key_id: int) -> Response:
        return Response(ApiKeySerializer(self._key(request, key_id)).data)


class ApiKeyRevokeView(_KeyApiView):
    @extend_schema(
        request=None,
        responses={200: ApiKeySerializer, 403: _ERRORS[403], 404: _ERRORS[404]},
    )
    def post(self, request: Request, key_id: int) -> Response:
        key = apikey_revoke(key=self._key(request, key_id))
        return Response(ApiKeySerializer(key).data)


class ApiKeyRollView(_KeyApiView):
    @extend_schema(
        request=ApiKeyRollSerializer,
        responses={201: _ISSUED, **_ERRORS},
    )
    def post(self, request: Request, key_id: int) -> Response:
        key = self._key(request, key_id)
        self._require_recent_login(request)
        serializer = ApiKeyRollSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = apikey_roll(key=key, **serializer.validated_data)
        return self._issued(issued)
