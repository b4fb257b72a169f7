"""Fuzzing both APIs against their OpenAPI descriptions (schemathesis).

/api/ (the DRF self-service API) is described by drf-spectacular and fetched
from the running server's /api/schema/ as a logged-in user; /v1/ (the proxy)
by the hand-written docs/openapi-v1.yaml. Each operation gets valid and
invalid requests (schemathesis' positive and negative generation) sent to the
whole ASGI app under uvicorn, the proxy with a fake OpenAI backend on loopback
behind it. What must hold: no 5xx, and every 4xx from /v1/ is OpenAI's error
envelope, since the SDKs read it to pick their exception and retry.

Driven programmatically (one ordinary test per operation, Hypothesis inside)
rather than through schemathesis' pytest plugin, so that pytest-django's
fixtures (a real database, a server, a logged-in user) work as everywhere
else. Bounded for CI: a few dozen examples per operation, a fixed seed
(derandomize), no example database and no shrinking, so every run sends the
same requests. A request that once found a failure stays in the EXAMPLES
below, sent first on every run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from django.test import Client
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from accounts.tests.conftest import login
from chat.services import conversation_create
from tests.factories import apikey_make, user_make
from tests.fixtures_browser import ThreadedUvicorn
from tests.fixtures_proxy import ProxyRig

ROOT = Path(__file__).resolve().parent.parent
V1_SCHEMA = ROOT / "docs" / "openapi-v1.yaml"
SPECTACULAR = "drf_spectacular.openapi.AutoSchema"
COOKIES = ("sessionid", "csrftoken")

# Per operation, valid and invalid requests together: about 1 s an operation,
# most of it starting the server and emptying the database.
FUZZ = hypothesis_settings(
    max_examples=30,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)

# Every operation of each description, so that a new one is fuzzed too:
# test_the_descriptions_are_valid_and_list_every_operation fails until it is
# added here.
API_OPERATIONS = [
    "GET /api/conversations/",
    "POST /api/conversations/",
    "GET /api/conversations/{conversation_id}/",
    "PATCH /api/conversations/{conversation_id}/",
    "DELETE /api/conversations/{conversation_id}/",
    "GET /api/conversations/{conversation_id}/export.md",
    "GET /api/conversations/{conversation_id}/export.json",
    "GET /api/keys/",
    "POST /api/keys/",
    "GET /api/keys/{key_id}/",
    "POST /api/keys/{key_id}/revoke/",
    "POST /api/keys/{key_id}/roll/",
]
V1_OPERATIONS = [
    "GET /v1/models",
    "GET /v1/models/{model}",
    "POST /v1/chat/completions",
    "POST /v1/completions",
    "POST /v1/embeddings",
    "POST /v1/responses",
    "POST /v1/audio/transcriptions",
]
# The fake backend's model for each endpoint: half of the valid requests name
# it, so that they pass admission and reach the backend.
V1_MODELS = {
    "/v1/chat/completions": "fake-chat",
    "/v1/completions": "fake-chat",
    "/v1/responses": "fake-chat",
    "/v1/embeddings": "fake-embed",
    "/v1/audio/transcriptions": "whisper-fake",
}


# Findings in code this file does not own, as strict xfails: the operation
# fails until the finding is fixed, then XPASS fails the suite as a reminder
# to delete its line here.
API_XFAILS: dict[str, Any] = {}
V1_XFAILS: dict[str, Any] = {}
# Requests that found a failure, sent before the generated ones. NUL in the
# search once reached PostgreSQL, which refuses it in text: 500 (now refused
# with 400 before any view runs).
API_EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "GET /api/conversations/": [{"query": {"q": "\x00"}}],
}
V1_EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "POST /v1/audio/transcriptions": [
        {
            "body": {"\x1a(": "{}", "model": "whisper-fake", "file": b"\x1c\x07"},
            "media_type": "multipart/form-data",
        }
    ],
}


def openai_envelope(ctx: Any, response: Any, case: Any) -> None:
    """A 4xx reads {"error": {"message", "type", "param", "code"}}."""
    if not 400 <= response.status_code < 500:
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(
            f"{response.status_code} is not JSON: {response.content[:200]!r}"
        ) from None
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"no error object: {body!r}"
    missing = {"message", "type", "param", "code"} - error.keys()
    assert not missing, f"the error lacks {sorted(missing)}: {body!r}"
    assert isinstance(error["message"], str) and isinstance(error["type"], str)


def operation_fuzz(
    operation: Any,
    *,
    send: Callable[[Any], Any],
    checks: list[Any],
    examples: list[dict[str, Any]],
    path_parameters: dict[str, Any] | None = None,
    tweak: Callable[[Any, bool], None] = lambda case, flag: None,
) -> None:
    """Send `operation` the examples, then valid and invalid requests (half
    of them on `path_parameters`, where given); fail on any check."""
    for example in examples:
        case = operation.Case(**example)
        case.validate_response(send(case), checks=checks)
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    strategies = [operation.as_strategy(generation_mode=mode) for mode in modes]
    if path_parameters:
        strategies += [
            operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
            for mode in modes
        ]

    @FUZZ
    @given(case=st.one_of(strategies), flag=st.booleans())
    def fuzz(case: Any, flag: bool) -> None:
        tweak(case, flag)
        case.validate_response(send(case), checks=checks)

    fuzz()


def params(operations: list[str], xfails: dict[str, Any]) -> list[Any]:
    return [
        pytest.param(label, id=label, marks=[xfails[label]] if label in xfails else [])
        for label in operations
    ]


def operation_of(schema: Any, label: str) -> Any:
    method, path = label.split(" ", 1)
    return schema[path][method]


# --- /api/ -----------------------------------------------------------------


@pytest.fixture
def spectacular(settings: Any) -> None:
    """drf-spectacular's AutoSchema for DRF's views (REST_FRAMEWORK's
    DEFAULT_SCHEMA_CLASS); harmless once portal/settings.py names it."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_SCHEMA_CLASS": SPECTACULAR,
    }


class ApiRig:
    """alice logged in through the form (a fresh login, so that she may
    create keys) against a real server, with a key and a conversation."""

    def __init__(self, server: ThreadedUvicorn) -> None:
        self.server = server
        self.user = user_make(username="alice")
        client = login(Client(), self.user)
        client.get("/settings/account/")  # sets the csrftoken cookie
        # Sent with every request: they override the cookie that the schema's
        # security scheme makes schemathesis generate.
        self.cookies = {name: client.cookies[name].value for name in COOKIES}
        self.session = requests.Session()
        self.session.cookies.update(self.cookies)
        self.session.headers["X-CSRFToken"] = self.cookies["csrftoken"]
        self.ids = {
            "key_id": apikey_make(user=self.user).key.pk,
            "conversation_id": conversation_create(user=self.user, title="hi").pk,
        }

    def schema(self) -> Any:
        response = self.session.get(self.server.url + "/api/schema/?format=json")
        response.raise_for_status()
        return schemathesis.openapi.from_dict(response.json())

    def send(self, case: Any) -> Any:
        return case.call(
            base_url=self.server.url,
            session=self.session,
            cookies=self.cookies,
            timeout=20,
        )


@pytest.fixture
def api(
    spectacular: None, fast_password_hashing: None, portal_server: ThreadedUvicorn
) -> ApiRig:
    return ApiRig(portal_server)


@pytest.mark.parametrize("label", params(API_OPERATIONS, API_XFAILS))
def test_the_self_service_api_never_answers_5xx(api: ApiRig, label: str) -> None:
    operation = operation_of(api.schema(), label)
    operation_fuzz(
        operation,
        send=api.send,
        checks=[not_a_server_error],
        examples=API_EXAMPLES.get(label, []),
        path_parameters={
            name: value for name, value in api.ids.items() if name in operation.path
        },
    )


# --- /v1/ ------------------------------------------------------------------


def v1_schema() -> Any:
    return schemathesis.openapi.from_dict(yaml.safe_load(V1_SCHEMA.read_text()))


@pytest.fixture
def v1(proxy: ProxyRig, settings: Any) -> ProxyRig:
    """The proxy with its limits out of the way: the fuzzer sends hundreds of
    requests a minute, most of them refused, and 429s would hide the rest."""
    settings.DEFAULT_USER_RPM = 0
    settings.DEFAULT_USER_TPM = 0
    settings.LIMITS_REFRESH_SECONDS = 0.0
    settings.REFUSALS_PER_MINUTE = 1_000_000
    settings.AUTH_FAILURES_PER_MINUTE = 1_000_000
    return proxy


def model_named(path: str) -> Callable[[Any, bool], None]:
    """Half the valid requests name the fake backend's model. Invalid ones
    stay with the proxy: the fake backend is no model of a backend's
    validation, and its failures would be reported as the backend's (502)."""
    model = V1_MODELS.get(path)

    def tweak(case: Any, flag: bool) -> None:
        positive = case.meta.generation.mode is GenerationMode.POSITIVE
        if model and flag and positive and isinstance(case.body, dict):
            case.body["model"] = model

    return tweak


@pytest.mark.parametrize("label", params(V1_OPERATIONS, V1_XFAILS))
def test_the_proxy_never_answers_5xx_and_refuses_the_openai_way(
    v1: ProxyRig, label: str
) -> None:
    operation = operation_of(v1_schema(), label)
    auth = {"Authorization": f"Bearer {v1.key}"}
    with requests.Session() as session:
        operation_fuzz(
            operation,
            send=lambda case: case.call(
                base_url=v1.server.url, session=session, headers=auth, timeout=20
            ),
            checks=[not_a_server_error, openai_envelope],
            examples=V1_EXAMPLES.get(label, []),
            path_parameters={"model": "fake-chat"} if "{model}" in label else None,
            tweak=model_named(operation.path),
        )


def test_the_proxy_refuses_other_methods_and_routes_the_openai_way(
    v1: ProxyRig,
) -> None:
    schema = v1_schema().raw_schema
    paths = [path.replace("{model}", "fake-chat") for path in schema["paths"]]
    methods = {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
    tried = [
        (method, path)
        for path, raw in zip(paths, schema["paths"].values(), strict=True)
        for method in sorted(methods - {m.upper() for m in raw})
    ]
    tried += [("GET", "/v1/nope"), ("POST", "/v1/audio/translations")]
    with v1.http() as client:
        for method, path in tried:
            response = client.request(method, path)
            assert 400 <= response.status_code < 500, (method, path)
            openai_envelope(None, response, None)


# --- the descriptions themselves -------------------------------------------


def test_the_descriptions_are_valid_and_list_every_operation(api: ApiRig) -> None:
    for schema, expected in (
        (api.schema(), API_OPERATIONS),
        (v1_schema(), V1_OPERATIONS),
    ):
        schema.validate()
        labels = [result.ok().label for result in schema.get_all_operations()]
        assert sorted(labels) == sorted(expected)


def test_the_api_schema_is_for_logged_in_users_only(api: ApiRig) -> None:
    url = api.server.url + "/api/schema/"
    assert requests.get(url, timeout=20).status_code == 403
    assert api.session.get(url, timeout=20).status_code == 200


def test_the_api_schema_generates_without_warnings(
    spectacular: None, db: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    SchemaGenerator().get_schema(request=None, public=True)
    assert not GENERATOR_STATS, capsys.readouterr().err
