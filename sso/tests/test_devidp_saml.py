"""The dev SAML IdP against OneLogin's python3-saml in strict mode, configured
the way django-allauth's SAML provider configures it for Portico: the flow a
browser takes (HTTP-Redirect AuthnRequest, login form, HTTP-POST Response),
driven with httpx, and the misbehaviour modes the SP must reject."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from lxml import etree
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from sso.devidp.saml import RunningSamlIdP, saml_idp_running
from sso.devidp.saml_users import persistent_id

SP_HOST = "127.0.0.1:8123"
SP_ENTITY_ID = f"http://{SP_HOST}/accounts/saml/testu/metadata/"
SP_ACS_PATH = "/accounts/saml/testu/acs/"
LATE_SP_ENTITY_ID = f"http://{SP_HOST}/accounts/saml/late/metadata/"
LATE_SP_ACS_PATH = "/accounts/saml/late/acs/"
IDP_NAME = "Test University SAML"
Settings = dict[str, Any]  # python3-saml settings of a throwaway SP
PASSWORD = "correct horse"

OID = {
    "mail": "urn:oid:0.9.2342.19200300.100.1.3",
    "givenName": "urn:oid:2.5.4.42",
    "sn": "urn:oid:2.5.4.4",
    "displayName": "urn:oid:2.16.840.1.113730.3.1.241",
    "eduPersonPrincipalName": "urn:oid:1.3.6.1.4.1.5923.1.1.1.6",
    "eduPersonScopedAffiliation": "urn:oid:1.3.6.1.4.1.5923.1.1.1.9",
    "eduPersonEntitlement": "urn:oid:1.3.6.1.4.1.5923.1.1.1.7",
}
ALICE = {
    "mail": ["alice@example.edu"],
    "givenName": ["Alice"],
    "sn": ["Liddell"],
    "displayName": ["Alice Liddell"],
    "eduPersonPrincipalName": ["alice@example.edu"],
    "eduPersonScopedAffiliation": ["faculty@example.edu", "member@example.edu"],
    "eduPersonEntitlement": ["urn:mace:example.edu:llm"],
}
USERS = {
    "alice": {"password": PASSWORD, "attributes": ALICE},
    "bob": {
        "password": PASSWORD,
        "name_id": "bob-fixed-id",
        "attributes": {"mail": "bob@example.edu", "departmentCode": ["42"]},
    },
}


def sp_settings(entity_id: str, acs_path: str) -> Settings:
    """SP half of the settings allauth builds (strict, signed assertions)."""
    return {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": entity_id,
            "assertionConsumerService": {
                "url": f"http://{SP_HOST}{acs_path}",
                "binding": OneLogin_Saml2_Constants.BINDING_HTTP_POST,
            },
        },
        "security": {
            "wantAssertionsSigned": True,
            "rejectDeprecatedAlgorithm": True,
            "requestedAuthnContext": False,
            "wantNameId": False,
            "allowRepeatAttributeName": True,
        },
    }


def sp_metadata_xml(entity_id: str, acs_path: str) -> str:
    settings = OneLogin_Saml2_Settings(
        sp_settings(entity_id, acs_path), sp_validation_only=True
    )
    metadata = settings.get_sp_metadata()
    assert settings.validate_metadata(metadata) == []
    return metadata


@dataclass
class LateMetadata:
    """A second SP's metadata URL: 503 until `up` is set (SP starts late)."""

    url: str
    up: threading.Event


@pytest.fixture(scope="module")
def late_metadata() -> Iterator[LateMetadata]:
    up = threading.Event()
    xml = sp_metadata_xml(LATE_SP_ENTITY_ID, LATE_SP_ACS_PATH).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = xml if up.is_set() else b"not yet"
            self.send_response(200 if up.is_set() else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield LateMetadata(f"http://127.0.0.1:{server.server_address[1]}/metadata/", up)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def idp(
    tmp_path_factory: pytest.TempPathFactory, late_metadata: LateMetadata
) -> Iterator[RunningSamlIdP]:
    metadata_file = tmp_path_factory.mktemp("sp") / "sp-metadata.xml"
    metadata_file.write_text(sp_metadata_xml(SP_ENTITY_ID, SP_ACS_PATH))
    sources = [str(metadata_file), late_metadata.url]
    with saml_idp_running(name=IDP_NAME, users=USERS, sp_metadata=sources) as running:
        yield running


def sp_config(idp: RunningSamlIdP, entity_id: str, acs_path: str) -> Settings:
    """A throwaway python3-saml SP that trusts the IdP (from its metadata)."""
    settings = sp_settings(entity_id, acs_path)
    settings["idp"] = OneLogin_Saml2_IdPMetadataParser.parse(idp.metadata_xml())["idp"]
    return settings


def acs_url(sp: Settings) -> str:
    return sp["sp"]["assertionConsumerService"]["url"]


@pytest.fixture(scope="module")
def sp(idp: RunningSamlIdP) -> Settings:
    return sp_config(idp, SP_ENTITY_ID, SP_ACS_PATH)


class Page(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.ids: set[str] = set()
        self.title = ""
        self._in_title = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if "id" in found:
            self.ids.add(found["id"])
        if tag == "form":
            self.forms.append({**found, "inputs": {}})
        elif tag == "input" and self.forms and found.get("name"):
            self.forms[-1]["inputs"][found["name"]] = found.get("value", "")
        self._in_title = tag == "title"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False


def request_data(path: str, post: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "https": "off",
        "http_host": SP_HOST,
        "script_name": "",
        "path_info": path,
        "get_data": {},
        "post_data": post or {},
    }


def client() -> httpx.Client:
    return httpx.Client(timeout=15, trust_env=False)


def open_login(
    sp: Settings, relay_state: str = "state=abc123"
) -> tuple[str, httpx.Response]:
    """The SP's redirect, followed to the IdP: (request ID, login page)."""
    auth = OneLogin_Saml2_Auth(request_data("/accounts/saml/login/"), sp)
    url = auth.login(return_to=relay_state)
    with client() as http:
        page = http.get(url)
    return auth.get_last_request_id(), page


def submit_login(
    idp: RunningSamlIdP, page: httpx.Response, username: str, password: str
) -> Page:
    login_id = Page(page.text).forms[0]["inputs"]["login"]
    form = {"login": login_id, "username": username, "password": password}
    with client() as http:
        answer = http.post(f"{idp.base_url}/sso/login", data=form)
    assert answer.status_code == 200
    return Page(answer.text)


def sign_in(
    idp: RunningSamlIdP, sp: Settings, username: str = "alice"
) -> tuple[str, dict[str, Any]]:
    """The whole browser flow: (request ID, the auto-submitting form)."""
    request_id, page = open_login(sp)
    assert page.status_code == 200, page.text
    result = submit_login(idp, page, username, PASSWORD)
    assert len(result.forms) == 1
    return request_id, result.forms[0]


def consume(sp: Settings, form: dict[str, Any], request_id: str) -> OneLogin_Saml2_Auth:
    """What allauth's ACS view does with the POSTed form."""
    post = {
        k: v for k, v in form["inputs"].items() if k in ("SAMLResponse", "RelayState")
    }
    acs_path = urlsplit(acs_url(sp)).path
    auth = OneLogin_Saml2_Auth(request_data(acs_path, post), sp)
    auth.process_response(request_id=request_id)
    return auth


def test_metadata_parses_and_carries_the_signing_cert(idp: RunningSamlIdP) -> None:
    xml = idp.metadata_xml()
    parsed = OneLogin_Saml2_IdPMetadataParser.parse(xml)["idp"]
    assert parsed["entityId"] == idp.entity_id == f"{idp.base_url}/metadata"
    assert parsed["singleSignOnService"]["url"] == idp.sso_url
    assert parsed["x509cert"] == "".join(idp.certificate_pem.splitlines()[1:-1])
    post_sso = OneLogin_Saml2_IdPMetadataParser.parse(
        xml, required_sso_binding=OneLogin_Saml2_Constants.BINDING_HTTP_POST
    )["idp"]["singleSignOnService"]["url"]
    assert post_sso == f"{idp.base_url}/sso/post"
    root = etree.fromstring(xml.encode())
    ns = {
        "mdui": "urn:oasis:names:tc:SAML:metadata:ui",
        "shibmd": "urn:mace:shibboleth:metadata:1.0",
    }
    assert root.findtext(".//mdui:UIInfo/mdui:DisplayName", namespaces=ns) == IDP_NAME
    assert root.findtext(".//shibmd:Scope", namespaces=ns) == "example.edu"


def test_login_page_and_the_post_binding_form(
    idp: RunningSamlIdP, sp: Settings
) -> None:
    _, page = open_login(sp)
    login = Page(page.text)
    assert login.title == IDP_NAME
    assert {"username", "password", "sign-in"} <= login.ids
    wrong = submit_login(idp, page, "alice", "wrong")
    assert "login-error" in wrong.ids
    assert {"username", "password", "sign-in"} <= wrong.ids
    # The pending login survives a wrong password.
    right = submit_login(idp, page, "alice", PASSWORD)
    form = right.forms[0]
    assert form["method"] == "post"
    assert form["action"] == acs_url(sp)
    assert form["inputs"]["RelayState"] == "state=abc123"
    assert "continue" in right.ids  # the <noscript> button


def test_normal_flow_is_valid_for_strict_python3_saml(
    idp: RunningSamlIdP, sp: Settings
) -> None:
    request_id, form = sign_in(idp, sp)
    auth = consume(sp, form, request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.is_authenticated()
    assert auth.get_nameid() == persistent_id("alice")
    assert auth.get_nameid_format() == OneLogin_Saml2_Constants.NAMEID_PERSISTENT
    attributes = auth.get_attributes()
    for name, oid in OID.items():
        assert attributes[oid] == ALICE[name], name
    friendly = auth.get_friendlyname_attributes()
    assert friendly["eduPersonPrincipalName"] == ["alice@example.edu"]


def test_explicit_name_id_and_unknown_attribute_names(
    idp: RunningSamlIdP, sp: Settings
) -> None:
    request_id, form = sign_in(idp, sp, "bob")
    auth = consume(sp, form, request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.get_nameid() == "bob-fixed-id"
    assert auth.get_attributes()[OID["mail"]] == ["bob@example.edu"]
    assert auth.get_attributes()["departmentCode"] == ["42"]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("unsigned", "not signed"),
        ("tampered", "Signature validation failed"),
        ("wrong_audience", "not a valid audience"),
        ("expired", "expired"),
    ],
)
def test_misbehaviour_is_rejected_once(
    idp: RunningSamlIdP, sp: Settings, mode: str, reason: str
) -> None:
    assert idp.control("misbehave", {"mode": mode}) == {"mode": mode}
    request_id, form = sign_in(idp, sp)
    auth = consume(sp, form, request_id)
    assert auth.get_errors() != []
    assert reason in (auth.get_last_error_reason() or "")
    request_id, form = sign_in(idp, sp)  # the next response is normal again
    assert consume(sp, form, request_id).get_errors() == []


def test_control_creates_and_updates_users(idp: RunningSamlIdP, sp: Settings) -> None:
    created = idp.control(
        "users/carol", {"password": PASSWORD, "attributes": {"mail": "c@example.edu"}}
    )
    assert created["created"] is True
    request_id, form = sign_in(idp, sp, "carol")
    auth = consume(sp, form, request_id)
    assert auth.get_attributes() == {OID["mail"]: ["c@example.edu"]}
    entitlement = ["urn:mace:example.edu:llm", "urn:mace:example.edu:gpu"]
    updated = idp.control(
        "/_control/users/carol", {"attributes": {"eduPersonEntitlement": entitlement}}
    )
    assert updated["created"] is False
    request_id, form = sign_in(idp, sp, "carol")
    auth = consume(sp, form, request_id)
    assert auth.get_errors() == []
    assert auth.get_attributes() == {OID["eduPersonEntitlement"]: entitlement}


def test_control_errors(idp: RunningSamlIdP) -> None:
    assert idp.control("health")["status"] == "ok"
    with pytest.raises(httpx.HTTPStatusError) as unknown:
        idp.control("users/nobody", {"attributes": {}})
    assert unknown.value.response.status_code == 404
    with pytest.raises(httpx.HTTPStatusError) as bad_mode:
        idp.control("misbehave", {"mode": "explode"})
    assert bad_mode.value.response.status_code == 400


def test_last_response_can_be_replayed(idp: RunningSamlIdP, sp: Settings) -> None:
    request_id, form = sign_in(idp, sp)
    last = idp.control("last-response")
    assert last == {
        "acs_url": acs_url(sp),
        "SAMLResponse": form["inputs"]["SAMLResponse"],
        "RelayState": "state=abc123",
    }
    replay = {"inputs": {"SAMLResponse": last["SAMLResponse"]}}
    assert consume(sp, replay, request_id).get_errors() == []


def test_post_binding_sso_endpoint(idp: RunningSamlIdP, sp: Settings) -> None:
    post_sso = {"url": f"{idp.base_url}/sso/post"}  # the AuthnRequest's Destination
    idp_settings = {**sp["idp"], "singleSignOnService": post_sso}
    settings = OneLogin_Saml2_Settings({**sp, "idp": idp_settings})
    authn_request = OneLogin_Saml2_Authn_Request(settings)
    with client() as http:
        page = http.post(
            f"{idp.base_url}/sso/post",
            data={"SAMLRequest": authn_request.get_request(deflate=False)},
        )
    assert page.status_code == 200
    form = submit_login(idp, page, "alice", PASSWORD).forms[0]
    assert "RelayState" not in form["inputs"]
    assert consume(sp, form, authn_request.get_id()).get_errors() == []


def test_url_metadata_is_fetched_lazily_and_refetched(
    idp: RunningSamlIdP, late_metadata: LateMetadata
) -> None:
    late = sp_config(idp, LATE_SP_ENTITY_ID, LATE_SP_ACS_PATH)
    _, refused = open_login(late)
    assert refused.status_code == 400
    assert "unknown service provider" in refused.text
    late_metadata.up.set()
    request_id, form = sign_in(idp, late)
    assert form["action"] == acs_url(late)
    assert consume(late, form, request_id).get_errors() == []


def test_unregistered_acs_url_is_refused(idp: RunningSamlIdP, sp: Settings) -> None:
    elsewhere = sp_settings(SP_ENTITY_ID, "/elsewhere/")
    _, page = open_login({**sp, "sp": elsewhere["sp"]})
    assert page.status_code == 400
    assert "AssertionConsumerService" in page.text
