"""The dev SAML IdP's protocol side, on pysaml2: configuration, metadata,
AuthnRequest parsing and signed Responses, plus the misbehaviour modes the
control endpoints switch on for exactly one response."""

from __future__ import annotations

import base64
import logging
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, SAMLError, saml
from saml2.assertion import Policy
from saml2.config import IdPConfig
from saml2.mdstore import MetadataStore
from saml2.metadata import create_metadata_string
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from sso.devidp.saml_keys import SigningPair
from sso.devidp.saml_sps import ServiceProviders
from sso.devidp.saml_users import User, UserStore

logger = logging.getLogger(__name__)

MISBEHAVE_MODES = ("none", "unsigned", "tampered", "wrong_audience", "expired")
WRONG_AUDIENCE = "https://wrong-audience.invalid/saml/sp"
LIFETIME_MINUTES = 5
EXPIRED_LIFETIME_MINUTES = -15  # past python3-saml's 300 s clock-drift allowance
PENDING_TTL_S = 1800
PENDING_MAX = 1000
SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"


class SamlRequestError(Exception):
    """An SSO request the IdP answers with a 400 page."""


class UnknownServiceProvider(SamlRequestError):
    pass


@dataclass(frozen=True)
class PendingLogin:
    request_id: str
    sp_entity_id: str
    acs_url: str
    relay_state: str | None
    created: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class IssuedResponse:
    acs_url: str
    saml_response: str  # base64 of the Response XML, as the HTTP-POST binding sends it
    relay_state: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "acs_url": self.acs_url,
            "SAMLResponse": self.saml_response,
            "RelayState": self.relay_state,
        }


class ReleasePolicy(Policy):
    """pysaml2's Policy with a lifetime and, for `wrong_audience`, a foreign
    Audience in the Conditions."""

    def __init__(
        self, *, lifetime_minutes: int, audience: str | None, mds: MetadataStore
    ) -> None:
        restrictions = {
            "default": {
                "lifetime": {"minutes": lifetime_minutes},
                "attribute_restrictions": None,
                "name_form": NAME_FORMAT_URI,
            }
        }
        super().__init__(restrictions, mds=mds)
        self._audience = audience

    def conditions(self, sp_entity_id: str) -> saml.Conditions:
        conditions = super().conditions(sp_entity_id)
        if self._audience:
            conditions.audience_restriction[0].audience[0].text = self._audience
        return conditions


def build_config(
    base_url: str, name: str, signing: SigningPair, scopes: list[str]
) -> IdPConfig:
    entity_id = f"{base_url}/metadata"
    idp: dict[str, Any] = {
        "name": name,
        "endpoints": {
            "single_sign_on_service": [
                (f"{base_url}/sso/redirect", BINDING_HTTP_REDIRECT),
                (f"{base_url}/sso/post", BINDING_HTTP_POST),
            ]
        },
        "name_id_format": [NAMEID_FORMAT_PERSISTENT],
        "want_authn_requests_signed": False,
        "sign_assertion": True,
        "sign_response": False,
        "ui_info": {"display_name": [{"text": name, "lang": "en"}]},
        "signing_algorithm": SIG_RSA_SHA256,
        "digest_algorithm": DIGEST_SHA256,
    }
    if scopes:
        idp["scope"] = scopes
    config = IdPConfig()
    config.load(
        {
            "entityid": entity_id,
            "name": name,
            "service": {"idp": idp},
            "key_file": str(signing.key_file),
            "cert_file": str(signing.cert_file),
            "xmlsec_binary": shutil.which("xmlsec1") or "/usr/bin/xmlsec1",
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
            "metadata": {},
            "accepted_time_diff": 60,
            "delete_tmpfiles": True,
        }
    )
    return config


def tamper(xml: str) -> str:
    """Alter the signed assertion's NameID and first attribute value."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    root = etree.fromstring(xml.encode(), parser)
    namespaces = {"saml": SAML_NS}
    for path in (".//saml:Subject/saml:NameID", ".//saml:AttributeValue"):
        node = root.find(path, namespaces)
        if node is not None:
            node.text = f"tampered-{node.text or ''}"
    return etree.tostring(root, encoding="unicode")


class DevSamlIdP:
    """One IdP: pysaml2 Server, trusted SPs, accounts, pending logins."""

    def __init__(
        self,
        *,
        base_url: str,
        name: str,
        users: UserStore,
        signing: SigningPair,
        sp_sources: list[str],
        sp_trusted: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url
        self.name = name
        self.entity_id = f"{base_url}/metadata"
        self.users = users
        self.certificate_pem = signing.certificate_pem
        config = build_config(base_url, name, signing, users.scopes())
        self.server = Server(config=config)
        self.sps = ServiceProviders(self.server.metadata, sp_sources, sp_trusted)
        self.metadata_xml = create_metadata_string("", config=config).decode()
        self._pending: dict[str, PendingLogin] = {}
        self._misbehave = "none"
        self._last: IssuedResponse | None = None
        self._lock = threading.Lock()

    # -- requests ---------------------------------------------------------

    def begin_login(
        self, saml_request: str, binding: str, relay_state: str | None
    ) -> str:
        """Parse an AuthnRequest; returns the id of the pending login."""
        with self._lock:
            try:
                parsed = self.server.parse_authn_request(saml_request, binding)
            except Exception as error:  # pysaml2 raises many unrelated types
                raise SamlRequestError("malformed AuthnRequest") from error
            if parsed is None or parsed.message.issuer is None:
                raise SamlRequestError("AuthnRequest without an Issuer")
        issuer = (parsed.message.issuer.text or "").strip()
        if not self.sps.ensure_known(issuer):
            raise UnknownServiceProvider(f"unknown service provider {issuer}")
        with self._lock:
            try:
                args = self.server.response_args(parsed.message, [BINDING_HTTP_POST])
            except SAMLError as error:
                raise SamlRequestError(
                    "no HTTP-POST AssertionConsumerService matching the request"
                ) from error
            login_id = secrets.token_urlsafe(24)
            self._prune_pending()
            self._pending[login_id] = PendingLogin(
                request_id=args["in_response_to"],
                sp_entity_id=args["sp_entity_id"],
                acs_url=args["destination"],
                relay_state=relay_state,
            )
        logger.info("AuthnRequest %s from %s", args["in_response_to"], issuer)
        return login_id

    def _prune_pending(self) -> None:
        deadline = time.monotonic() - PENDING_TTL_S
        for key in [k for k, v in self._pending.items() if v.created < deadline]:
            del self._pending[key]
        while len(self._pending) >= PENDING_MAX:
            del self._pending[next(iter(self._pending))]

    def pending(self, login_id: str) -> PendingLogin | None:
        with self._lock:
            return self._pending.get(login_id)

    # -- responses --------------------------------------------------------

    def set_misbehave(self, mode: str) -> None:
        if mode not in MISBEHAVE_MODES:
            raise ValueError(f"mode must be one of {', '.join(MISBEHAVE_MODES)}")
        with self._lock:
            self._misbehave = mode

    def last_response(self) -> IssuedResponse | None:
        with self._lock:
            return self._last

    def complete_login(self, login_id: str, user: User) -> IssuedResponse:
        """Answer a pending login for an authenticated user (consumes both the
        pending login and the misbehaviour mode)."""
        with self._lock:
            pending = self._pending.pop(login_id, None)
            if pending is None:
                raise SamlRequestError("unknown or expired login")
            mode, self._misbehave = self._misbehave, "none"
            xml = self._response_xml(pending, user, mode)
            issued = IssuedResponse(
                acs_url=pending.acs_url,
                saml_response=base64.b64encode(xml.encode()).decode(),
                relay_state=pending.relay_state,
            )
            self._last = issued
        logger.info(
            "Response to %s for %s at %s (mode %s)",
            pending.request_id,
            user.username,
            pending.acs_url,
            mode,
        )
        return issued

    def _response_xml(self, pending: PendingLogin, user: User, mode: str) -> str:
        name_id = saml.NameID(
            format=NAMEID_FORMAT_PERSISTENT,
            name_qualifier=self.entity_id,
            sp_name_qualifier=pending.sp_entity_id,
            text=user.name_id,
        )
        policy = ReleasePolicy(
            lifetime_minutes=(
                EXPIRED_LIFETIME_MINUTES if mode == "expired" else LIFETIME_MINUTES
            ),
            audience=WRONG_AUDIENCE if mode == "wrong_audience" else None,
            mds=self.server.metadata,
        )
        policy.acs = self.server.config.attribute_converters
        signed = mode != "unsigned"
        response = self.server.create_authn_response(
            identity={key: list(values) for key, values in user.attributes.items()},
            in_response_to=pending.request_id,
            destination=pending.acs_url,
            sp_entity_id=pending.sp_entity_id,
            userid=user.username,
            name_id=name_id,
            authn={"class_ref": saml.AUTHN_PASSWORD_PROTECTED},
            sign_assertion=signed,
            sign_response=False,
            sign_alg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
            release_policy=policy,
        )
        xml = str(response)
        if mode == "tampered":
            xml = tamper(xml)
        return xml
