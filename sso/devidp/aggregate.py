"""Signed federation aggregates made up on the spot, for importidps' tests and
benchmarks and for an operator who wants to try the command without eduGAIN:

    python -m sso.devidp.aggregate --idps 5000 --out agg.xml \\
        --key-out agg.key --cert-out agg.crt
    manage.py importidps agg.xml --federation test --cert agg.crt

The entities look like real Shibboleth IdPs (mdui, shibmd:Scope, entity
categories, a signing KeyDescriptor, Redirect and POST endpoints), signed the
way eduGAIN signs (RSA-SHA256, exclusive c14n, enveloped, Reference to the
root's ID), plus a few SPs that an import must pass over.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import functools
import secrets
from pathlib import Path

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

NSMAP = {
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "mdui": "urn:oasis:names:tc:SAML:metadata:ui",
    "mdattr": "urn:oasis:names:tc:SAML:metadata:attribute",
    "mdrpi": "urn:oasis:names:tc:SAML:metadata:rpi",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "shibmd": "urn:mace:shibboleth:metadata:1.0",
}
_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:"
_RS = "http://refeds.org/category/research-and-scholarship"
_SIRTFI = "https://refeds.org/sirtfi"
SP_ENTITIES = 3


def test_signing_pair(
    *, common_name: str = "Test Federation signer"
) -> tuple[bytes, bytes]:
    """A fresh RSA-2048 key and a self-signed certificate, as PEM bytes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


# Not named test_* for pytest: the collector would call it.
test_signing_pair.__test__ = False  # type: ignore[attr-defined]


@functools.cache
def _idp_certificate_b64() -> str:
    """One certificate shared by every generated IdP: a key per IdP would cost
    seconds for thousands and test nothing more."""
    _key_pem, cert_pem = test_signing_pair(common_name="Example IdP")
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(
        serialization.Encoding.DER
    )
    return base64.b64encode(der).decode()


def _q(prefix: str, name: str) -> str:
    return f"{{{NSMAP[prefix]}}}{name}"


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str):  # type: ignore[no-untyped-def]
    prefix, name = tag.split(":")
    element = etree.SubElement(parent, _q(prefix, name), attrib)
    if text is not None:
        element.text = text
    return element


def _categories(entity: etree._Element, *, research_and_scholarship: bool) -> None:
    extensions = _sub(entity, "md:Extensions")
    _sub(
        extensions,
        "mdrpi:RegistrationInfo",
        registrationAuthority="https://federation.example.org",
    )
    attributes = _sub(extensions, "mdattr:EntityAttributes")
    attribute = _sub(
        attributes,
        "saml:Attribute",
        Name="urn:oasis:names:tc:SAML:attribute:assurance-certification",
        NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
    )
    _sub(attribute, "saml:AttributeValue", _SIRTFI)
    if research_and_scholarship:
        attribute = _sub(
            attributes,
            "saml:Attribute",
            Name="http://macedir.org/entity-category-support",
            NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
        )
        _sub(attribute, "saml:AttributeValue", _RS)


def _idp_entity(
    parent: etree._Element, *, index: int, research_and_scholarship: bool
) -> None:
    domain = f"uni{index}.example.org"
    base = f"https://idp.{domain}/idp"
    entity = _sub(parent, "md:EntityDescriptor", entityID=f"{base}/shibboleth")
    _categories(entity, research_and_scholarship=research_and_scholarship)
    descriptor = _sub(
        entity,
        "md:IDPSSODescriptor",
        protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol",
    )
    extensions = _sub(descriptor, "md:Extensions")
    _sub(extensions, "shibmd:Scope", domain, regexp="false")
    pattern = "^.+\\." + domain.replace(".", "\\.") + "$"
    _sub(extensions, "shibmd:Scope", pattern, regexp="true")
    ui = _sub(extensions, "mdui:UIInfo")
    lang = "{http://www.w3.org/XML/1998/namespace}lang"
    _sub(ui, "mdui:DisplayName", f"Näiteülikool {index}", **{lang: "et"})
    _sub(ui, "mdui:DisplayName", f"University {index} of Example", **{lang: "en"})
    _sub(
        ui,
        "mdui:Description",
        f"Identity provider of University {index}",
        **{lang: "en"},
    )
    hints = _sub(extensions, "mdui:DiscoHints")
    _sub(hints, "mdui:DomainHint", f"staff.{domain}")
    key_info = _sub(_sub(descriptor, "md:KeyDescriptor", use="signing"), "ds:KeyInfo")
    _sub(_sub(key_info, "ds:X509Data"), "ds:X509Certificate", _idp_certificate_b64())
    _sub(
        descriptor,
        "md:NameIDFormat",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    )
    for binding, path in (("HTTP-Redirect", "Redirect"), ("HTTP-POST", "POST")):
        _sub(
            descriptor,
            "md:SingleSignOnService",
            Binding=f"{_BINDING}{binding}",
            Location=f"{base}/profile/SAML2/{path}/SSO",
        )
    organization = _sub(entity, "md:Organization")
    _sub(organization, "md:OrganizationName", f"University {index}", **{lang: "en"})
    _sub(organization, "md:OrganizationDisplayName", f"Univ. {index}", **{lang: "en"})
    _sub(organization, "md:OrganizationURL", f"https://www.{domain}/", **{lang: "en"})
    contact = _sub(entity, "md:ContactPerson", contactType="technical")
    _sub(contact, "md:EmailAddress", f"mailto:idp-admin@{domain}")


def _sp_entity(parent: etree._Element, *, index: int) -> None:
    entity = _sub(
        parent, "md:EntityDescriptor", entityID=f"https://sp{index}.example.net/sp"
    )
    descriptor = _sub(
        entity,
        "md:SPSSODescriptor",
        protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol",
    )
    _sub(
        descriptor,
        "md:AssertionConsumerService",
        Binding=f"{_BINDING}HTTP-POST",
        Location=f"https://sp{index}.example.net/Shibboleth.sso/SAML2/POST",
        index="1",
    )


def _extra_entity(parent: etree._Element, xml: str) -> None:
    """An EntityDescriptor given as text, using the md/mdui/... prefixes."""
    declarations = " ".join(f'xmlns:{p}="{uri}"' for p, uri in NSMAP.items())
    wrapper = etree.fromstring(
        f"<md:Wrapper {declarations}>{xml}</md:Wrapper>",
        etree.XMLParser(resolve_entities=False, no_network=True),
    )
    for element in wrapper:
        parent.append(element)


def _sign(
    root: etree._Element, *, signing_key_pem: bytes, signing_cert_pem: bytes
) -> None:
    """Enveloped RSA-SHA256 signature over the root's ID, as the first child
    (where the metadata schema wants ds:Signature)."""
    signature = xmlsec.template.create(
        root,
        c14n_method=xmlsec.constants.TransformExclC14N,
        sign_method=xmlsec.constants.TransformRsaSha256,
    )
    root.insert(0, signature)
    reference = xmlsec.template.add_reference(
        signature, xmlsec.constants.TransformSha256, uri=f"#{root.get('ID')}"
    )
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
    xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    context = xmlsec.SignatureContext()
    context.register_id(root, "ID")
    key = xmlsec.Key.from_memory(signing_key_pem, xmlsec.constants.KeyDataFormatPem)
    key.load_cert_from_memory(signing_cert_pem, xmlsec.constants.KeyDataFormatCertPem)
    context.key = key
    context.sign(signature)


def aggregate_build(
    *,
    idps: int,
    signing_key_pem: bytes,
    signing_cert_pem: bytes,
    federation_name: str = "Test Federation",
    research_and_scholarship_every: int = 2,
    extra_entities: list[str] | None = None,
    valid_until: datetime.datetime | None = None,
) -> bytes:
    """A signed md:EntitiesDescriptor with `idps` IdPs (every
    `research_and_scholarship_every`-th one R&S; 0: none), SP_ENTITIES SPs and
    `extra_entities` (EntityDescriptor XML text, for odd cases), valid until
    `valid_until` (default: a week from now)."""
    now = datetime.datetime.now(datetime.UTC)
    valid_until = valid_until or now + datetime.timedelta(days=7)
    root = etree.Element(
        _q("md", "EntitiesDescriptor"),
        {
            "ID": f"_{secrets.token_hex(16)}",
            "Name": federation_name,
            "validUntil": valid_until.astimezone(datetime.UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
        },
        nsmap=NSMAP,
    )
    for index in range(idps):
        every = research_and_scholarship_every
        _idp_entity(
            root,
            index=index,
            research_and_scholarship=bool(every) and index % every == 0,
        )
    for index in range(SP_ENTITIES):
        _sp_entity(root, index=index)
    for xml in extra_entities or []:
        _extra_entity(root, xml)
    _sign(root, signing_key_pem=signing_key_pem, signing_cert_pem=signing_cert_pem)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idps", type=int, default=100)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--key-out", type=Path, help="write the new signing key here")
    parser.add_argument("--cert-out", type=Path, help="write its certificate here")
    parser.add_argument("--key", type=Path, help="sign with this key instead")
    parser.add_argument("--cert", type=Path, help="the --key's certificate")
    parser.add_argument("--research-and-scholarship-every", type=int, default=2)
    args = parser.parse_args(argv)
    if bool(args.key) != bool(args.cert):
        parser.error("--key and --cert go together")
    if args.key:
        key_pem, cert_pem = args.key.read_bytes(), args.cert.read_bytes()
    else:
        key_pem, cert_pem = test_signing_pair()
        if not args.cert_out:
            parser.error("--cert-out is needed to check a new key's signature")
        args.cert_out.write_bytes(cert_pem)
        if args.key_out:
            args.key_out.touch(mode=0o600)
            args.key_out.write_bytes(key_pem)
    data = aggregate_build(
        idps=args.idps,
        signing_key_pem=key_pem,
        signing_cert_pem=cert_pem,
        research_and_scholarship_every=args.research_and_scholarship_every,
    )
    args.out.write_bytes(data)
    print(f"{args.out}: {args.idps} IdPs, {SP_ENTITIES} SPs, {len(data)} bytes")


if __name__ == "__main__":
    main()
