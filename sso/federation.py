"""Reads a federation's SAML metadata aggregate (eduGAIN-style
md:EntitiesDescriptor) into the IdPs Portico can send users to.

The aggregate decides which key signs each university's assertions, so it is
believed only once its signature checks out against the federation's
certificate, configured out of band; the checks guard the usual ways around an
enveloped signature (signature wrapping, References to a child, extra
transforms) and replays of old metadata (validUntil). Pure parsing: no Django.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import xmlsec
from lxml import etree

NS = {
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "mdui": "urn:oasis:names:tc:SAML:metadata:ui",
    "mdattr": "urn:oasis:names:tc:SAML:metadata:attribute",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "shibmd": "urn:mace:shibboleth:metadata:1.0",
}
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
SAML2_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
RESEARCH_AND_SCHOLARSHIP = "http://refeds.org/category/research-and-scholarship"
# The REFEDS category, as an entity category or as one the IdP supports.
_RESEARCH_AND_SCHOLARSHIP = etree.XPath(
    "md:Extensions/mdattr:EntityAttributes/saml:Attribute[@Name="
    "'http://macedir.org/entity-category' or @Name="
    "'http://macedir.org/entity-category-support']/saml:AttributeValue"
    "[normalize-space()=$rs]",
    namespaces=NS,
)
_WEB_URL = re.compile(r"https?://")

# Why an entity with an IDPSSODescriptor was left out (`skipped`'s keys).
SKIP_NO_SSO = "no SAML 2 SSO endpoint"
SKIP_NO_CERT = "no signing certificate"
SKIP_NO_ENTITY_ID = "no usable entity ID"
SKIP_EXPIRED = "expired"
SKIP_DUPLICATE = "duplicate entity ID"

ENTITY_ID_MAX = 1024  # Institution.entity_id
# The only algorithms a federation signs with today; SHA-1 and XPath/XSLT
# transforms are refused rather than trusted.
_T = xmlsec.constants
_C14N = (_T.TransformExclC14N, _T.TransformInclC14N)
_SIGNATURE_METHODS = tuple(
    getattr(_T, f"Transform{kind}Sha{bits}")
    for kind in ("Rsa", "Ecdsa")
    for bits in (256, 384, 512)
)
_DIGESTS = (_T.TransformSha256, _T.TransformSha384, _T.TransformSha512)
_REFERENCE_TRANSFORMS = (_T.TransformEnveloped, *_C14N)
_DOMAIN = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9])?(?:\.[a-z0-9-]+)+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL
)


@functools.cache
def _p(path: str) -> str:
    """A path ("md:Extensions/mdui:UIInfo") in the Clark notation of find()."""
    steps = (step.partition(":") for step in path.split("/"))
    return "/".join(f"{{{NS[prefix]}}}{name}" for prefix, _, name in steps)


class FederationMetadataError(Exception):
    """The aggregate is refused; the message says why, for an operator."""


@dataclass(frozen=True)
class FederatedIdP:
    entity_id: str
    display_name: str
    sso_url: str  # HTTP-Redirect SingleSignOnService Location
    signing_cert: str  # base64 DER, no PEM armour (python3-saml's x509cert)
    domains: tuple[str, ...]
    research_and_scholarship: bool


@dataclass(frozen=True)
class FederationMetadata:
    """What an aggregate holds. `skipped` counts the IdP entities left out, by
    reason; `non_idps` the entities that are no IdP at all (SPs, AAs)."""

    idps: list[FederatedIdP]
    skipped: dict[str, int]
    non_idps: int
    valid_until: datetime | None
    signed: bool


def federation_metadata_read(
    *,
    source: bytes | str | Path,
    cert_pem: bytes | None,
    allow_unsigned: bool = False,
    now: datetime | None = None,
) -> FederationMetadata:
    """Parse `source` (the file's bytes, or its path), check the root's
    signature against the certificate(s) in `cert_pem` and its validUntil,
    and read the IdPs. Without `cert_pem` only `allow_unsigned=True` reads the
    file, unchecked: that is for a test federation's unsigned file."""
    if cert_pem is None and not allow_unsigned:
        raise FederationMetadataError("No certificate to check the signature with.")
    now = now or datetime.now(UTC)
    root = _metadata_parse(source)
    if cert_pem is not None:
        _signature_verify(root=root, cert_pem=cert_pem)
    valid_until = _valid_until_check(root=root, now=now, required=cert_pem is not None)
    idps, skipped, non_idps = _entities_read(root=root, now=now)
    signed = cert_pem is not None
    return FederationMetadata(idps, skipped, non_idps, valid_until, signed)


def _metadata_parse(source: bytes | str | Path) -> etree._Element:
    """Parse without entities, DTDs or network; eduGAIN's ~80 MB needs
    huge_tree. Comments go: the signature does not cover them, and one inside
    a text (cs.ut<!---->.ee) would cut `.text` short to a domain nobody signed."""
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=True,
        load_dtd=False,
        remove_comments=True,
    )
    try:
        if isinstance(source, bytes):
            tree = etree.fromstring(source, parser).getroottree()
        else:
            tree = etree.parse(str(source), parser)
    except (etree.XMLSyntaxError, OSError) as error:
        raise FederationMetadataError(f"Not readable XML: {error}") from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise FederationMetadataError("The aggregate has a DOCTYPE; refused.")
    root = tree.getroot()
    if root.tag != _p("md:EntitiesDescriptor"):
        raise FederationMetadataError(f"{root.tag} is no md:EntitiesDescriptor.")
    return root


def _signature_verify(*, root: etree._Element, cert_pem: bytes) -> None:
    """The enveloped signature must sit directly on the root and cover the
    root: then nothing Portico reads below it can have been swapped in."""
    signatures = root.findall(_p("ds:Signature"))
    if not signatures:
        raise FederationMetadataError("Unsigned: no ds:Signature on the root element.")
    if len(signatures) > 1:
        raise FederationMetadataError("The root element has several signatures.")
    signature = signatures[0]
    _reference_check(root=root, signature=signature)
    certificates = _PEM_CERT.findall(cert_pem)
    if not certificates:
        raise FederationMetadataError("The certificate file holds no PEM certificate.")
    # Several certificates: a federation's key rollover; any one may sign.
    for certificate in certificates:
        try:
            key = xmlsec.Key.from_memory(certificate, _T.KeyDataFormatCertPem)
        except xmlsec.Error:
            raise FederationMetadataError("Unreadable certificate file.") from None
        if _signature_matches(root=root, signature=signature, key=key):
            return
    raise FederationMetadataError(
        "The aggregate's signature does not verify against the configured "
        "certificate (wrong certificate, or the file was changed after signing)."
    )


def _signature_matches(
    *, root: etree._Element, signature: etree._Element, key: xmlsec.Key
) -> bool:
    context = xmlsec.SignatureContext()
    if root.get("ID"):
        context.register_id(root, "ID")
    for transform in (*_C14N, *_SIGNATURE_METHODS):
        context.enable_signature_transform(transform)
    for transform in (*_REFERENCE_TRANSFORMS, *_DIGESTS):
        context.enable_reference_transform(transform)
    context.key = key
    try:
        context.verify(signature)
    except xmlsec.Error:
        return False
    return True


def _reference_check(*, root: etree._Element, signature: etree._Element) -> None:
    """One Reference, to the whole document ("") or to the root's own ID, with
    the enveloped-signature transform: a Reference to a child would leave the
    rest of the file unsigned."""
    references = signature.findall(_p("ds:SignedInfo/ds:Reference"))
    if len(references) != 1:
        raise FederationMetadataError(
            f"The signature must have one Reference, it has {len(references)}."
        )
    uri = references[0].get("URI")
    root_id = root.get("ID")
    if uri is None or (uri != "" and (not root_id or uri != f"#{root_id}")):
        raise FederationMetadataError(
            f"The signature's Reference ({uri!r}) does not cover the root element."
        )
    if uri:
        holders = root.xpath(
            "//*[@ID=$id or @Id=$id or @id=$id or @xml:id=$id]", id=root_id
        )
        if holders != [root]:
            raise FederationMetadataError(
                f"Several elements carry the signed ID {root_id!r}; refused."
            )
    transforms = [
        transform.get("Algorithm")
        for transform in references[0].iterfind(_p("ds:Transforms/ds:Transform"))
    ]
    if _T.TransformEnveloped.href not in transforms:
        raise FederationMetadataError("The signature is not an enveloped one.")
    _algorithms_check(signature=signature)


def _algorithms_check(*, signature: etree._Element) -> None:
    """Say plainly when a file is signed with SHA-1 or odd transforms; xmlsec
    refuses them too (only these transforms are enabled), but vaguely."""
    for path, allowed in (
        ("CanonicalizationMethod", _C14N),
        ("SignatureMethod", _SIGNATURE_METHODS),
        ("Reference/ds:DigestMethod", _DIGESTS),
        ("Reference/ds:Transforms/ds:Transform", _REFERENCE_TRANSFORMS),
    ):
        for element in signature.iterfind(_p(f"ds:SignedInfo/ds:{path}")):
            if element.get("Algorithm") not in {each.href for each in allowed}:
                raise FederationMetadataError(
                    "The signature uses an algorithm Portico does not accept: "
                    f"{element.get('Algorithm')}."
                )


def _valid_until_check(
    *, root: etree._Element, now: datetime, required: bool
) -> datetime | None:
    """Without an end, a signed file (and its old IdP keys) replays forever."""
    value = root.get("validUntil")
    if value is None:
        if required:
            raise FederationMetadataError("The aggregate has no validUntil; refused.")
        return None
    valid_until = _datetime_parse(value)
    if valid_until is None:
        raise FederationMetadataError(f"Unreadable validUntil {value!r}.")
    if valid_until <= now:
        raise FederationMetadataError(
            f"The aggregate expired at {valid_until.isoformat()} (validUntil); "
            "download a fresh copy."
        )
    return valid_until


def _datetime_parse(value: str) -> datetime | None:
    """xs:dateTime, as federations write it (2025-06-01T12:00:00Z); no zone
    means UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _entity_descriptors(parent: etree._Element):  # type: ignore[no-untyped-def]
    """EntityDescriptors where the schema puts them (nested
    EntitiesDescriptors included), never ones tucked into Extensions."""
    for child in parent:
        if child.tag == _p("md:EntityDescriptor"):
            yield child
        elif child.tag == _p("md:EntitiesDescriptor"):
            yield from _entity_descriptors(child)


def _entities_read(
    *, root: etree._Element, now: datetime
) -> tuple[list[FederatedIdP], dict[str, int], int]:
    idps: dict[str, FederatedIdP] = {}
    skipped: dict[str | None, int] = {}  # None: not an IdP
    for entity in _entity_descriptors(root):
        result = _idp_read(entity=entity, now=now)
        if isinstance(result, FederatedIdP) and result.entity_id in idps:
            result = SKIP_DUPLICATE
        if isinstance(result, FederatedIdP):
            idps[result.entity_id] = result
        else:
            skipped[result] = skipped.get(result, 0) + 1
    non_idps = skipped.pop(None, 0)
    return list(idps.values()), skipped, non_idps  # type: ignore[return-value]


def _idp_read(*, entity: etree._Element, now: datetime) -> FederatedIdP | str | None:
    """The IdP, a skip reason, or None for an entity that is no IdP."""
    descriptors = entity.findall(_p("md:IDPSSODescriptor"))
    if not descriptors:
        return None
    entity_id = (entity.get("entityID") or "").strip()
    if not entity_id or len(entity_id) > ENTITY_ID_MAX:
        return SKIP_NO_ENTITY_ID
    valid_until = _datetime_parse(entity.get("validUntil") or "")
    if valid_until is not None and valid_until <= now:
        return SKIP_EXPIRED
    for descriptor in descriptors:
        protocols = (descriptor.get("protocolSupportEnumeration") or "").split()
        sso_url = _sso_url(descriptor) if SAML2_PROTOCOL in protocols else None
        if sso_url:
            break
    else:
        return SKIP_NO_SSO
    signing_cert = _signing_cert(descriptor)
    if signing_cert is None:
        return SKIP_NO_CERT
    return FederatedIdP(
        entity_id=entity_id,
        display_name=_display_name(
            entity=entity, descriptor=descriptor, entity_id=entity_id
        ),
        sso_url=sso_url,
        signing_cert=signing_cert,
        domains=_domains(entity=entity, descriptor=descriptor),
        research_and_scholarship=_research_and_scholarship(entity),
    )


def _sso_url(descriptor: etree._Element) -> str | None:
    for service in descriptor.iterfind(_p("md:SingleSignOnService")):
        location = (service.get("Location") or "").strip()
        if service.get("Binding") == BINDING_REDIRECT and _WEB_URL.match(location):
            return location
    return None


def _signing_cert(descriptor: etree._Element) -> str | None:
    """The first certificate of a KeyDescriptor for signing (no `use` means
    signing and encryption), as base64 DER without whitespace."""
    for key_descriptor in descriptor.iterfind(_p("md:KeyDescriptor")):
        if key_descriptor.get("use", "signing") != "signing":
            continue
        for element in key_descriptor.iterfind(
            _p("ds:KeyInfo/ds:X509Data/ds:X509Certificate")
        ):
            text = "".join((element.text or "").split())
            if _BASE64.fullmatch(text):
                return text
    return None


def _localized(elements: list[etree._Element]) -> str | None:
    """English ("en", then "en-*") if there is one, else the first; whitespace
    collapsed."""
    texts = [
        ((el.get(XML_LANG) or "").lower(), " ".join((el.text or "").split()))
        for el in elements
    ]
    ranked = sorted(
        ((lang, text) for lang, text in texts if text),
        key=lambda pair: 0 if pair[0] == "en" else 1 + (not pair[0].startswith("en-")),
    )
    return ranked[0][1] if ranked else None


def _display_name(
    *, entity: etree._Element, descriptor: etree._Element, entity_id: str
) -> str:
    ui_names = descriptor.findall(_p("md:Extensions/mdui:UIInfo/mdui:DisplayName"))
    org_names = entity.findall(_p("md:Organization/md:OrganizationDisplayName"))
    return _localized(ui_names) or _localized(org_names) or entity_id


def _domains(*, entity: etree._Element, descriptor: etree._Element) -> tuple[str, ...]:
    """Literal shibmd:Scope values (regexp scopes name no domain) and
    mdui:DomainHints, lower-cased, each once, in file order."""
    elements = [
        *descriptor.iterfind(_p("md:Extensions/shibmd:Scope")),
        *entity.iterfind(_p("md:Extensions/shibmd:Scope")),
        *descriptor.iterfind(_p("md:Extensions/mdui:DiscoHints/mdui:DomainHint")),
    ]
    domains: dict[str, None] = {}
    for element in elements:
        if (element.get("regexp") or "false").strip().lower() in ("true", "1"):
            continue
        domain = (element.text or "").strip().lower().rstrip(".")
        if _DOMAIN.fullmatch(domain):
            domains[domain] = None
    return tuple(domains)


def _research_and_scholarship(entity: etree._Element) -> bool:
    return bool(_RESEARCH_AND_SCHOLARSHIP(entity, rs=RESEARCH_AND_SCHOLARSHIP))
