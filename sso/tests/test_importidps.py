"""importidps: a federation's signed aggregate becomes SocialApps and
Institutions; anything unsigned, wrongly signed, tampered, wrapped or expired
is refused before a row is written."""

from __future__ import annotations

import dataclasses
import datetime
import io
import time
from pathlib import Path

import pytest
import xmlsec
from django.core.management import CommandError, call_command
from lxml import etree

from sso.devidp.aggregate import aggregate_build, test_signing_pair
from sso.federation import (
    SKIP_NO_CERT,
    SKIP_NO_SSO,
    FederationMetadataError,
    federation_metadata_read,
)

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
T = xmlsec.constants
RS = "http://refeds.org/category/research-and-scholarship"
IDP_NO_REDIRECT = """<md:EntityDescriptor entityID="https://post-only.example.org/idp">
<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
 Location="https://post-only.example.org/sso"/></md:IDPSSODescriptor>
</md:EntityDescriptor>"""
IDP_SAML1 = """<md:EntityDescriptor entityID="https://saml1.example.org/idp">
<md:IDPSSODescriptor protocolSupportEnumeration="urn:mace:shibboleth:1.0">
<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
 Location="https://saml1.example.org/sso"/></md:IDPSSODescriptor>
</md:EntityDescriptor>"""
IDP_NO_CERT = IDP_SAML1.replace("saml1", "nocert").replace(
    "urn:mace:shibboleth:1.0", "urn:oasis:names:tc:SAML:2.0:protocol"
)
IDP_FINNISH = f"""<md:EntityDescriptor entityID="urn:mace:example:org-named">
<md:Extensions><mdattr:EntityAttributes><saml:Attribute
 Name="http://macedir.org/entity-category"><saml:AttributeValue>{RS}
</saml:AttributeValue></saml:Attribute></mdattr:EntityAttributes></md:Extensions>
<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
<md:Extensions><mdui:UIInfo><mdui:DisplayName xml:lang="fi">Yliopisto</mdui:DisplayName>
</mdui:UIInfo></md:Extensions>
<md:KeyDescriptor><ds:KeyInfo><ds:X509Data><ds:X509Certificate>
 QUJD REVG
</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
 Location="https://org.example.org/sso"/></md:IDPSSODescriptor>
</md:EntityDescriptor>"""


@pytest.fixture(scope="module")
def pair() -> tuple[bytes, bytes]:
    return test_signing_pair()


@pytest.fixture(scope="module")
def aggregate(pair):  # type: ignore[no-untyped-def]
    """aggregate(idps=6, ...) -> the signed file's bytes."""
    key_pem, cert_pem = pair
    return lambda **kw: aggregate_build(
        signing_key_pem=key_pem, signing_cert_pem=cert_pem, **{"idps": 6, **kw}
    )


@pytest.fixture
def files(tmp_path: Path, pair):  # type: ignore[no-untyped-def]
    """files(data) -> command-line arguments for that file and the cert."""
    (tmp_path / "fed.crt").write_bytes(pair[1])

    def write(data: bytes, name: str = "agg.xml") -> list[str]:
        (tmp_path / name).write_bytes(data)
        return [str(tmp_path / name), "--cert", str(tmp_path / "fed.crt")]

    return write


def _read(data: bytes, cert_pem: bytes):  # type: ignore[no-untyped-def]
    return federation_metadata_read(source=data, cert_pem=cert_pem)


def _sign(root: etree._Element, key_pem: bytes, uri: str) -> None:
    """An enveloped RSA-SHA256 signature appended to `root`, over `uri`."""
    signature = xmlsec.template.create(
        root, c14n_method=T.TransformExclC14N, sign_method=T.TransformRsaSha256
    )
    root.insert(0, signature)
    reference = xmlsec.template.add_reference(signature, T.TransformSha256, uri=uri)
    xmlsec.template.add_transform(reference, T.TransformEnveloped)
    context = xmlsec.SignatureContext()
    for element in root.iter(f"{{{MD}}}*"):
        if element.get("ID"):
            context.register_id(element, "ID")
    context.key = xmlsec.Key.from_memory(key_pem, T.KeyDataFormatPem)
    context.sign(signature)


# -- the reader ---------------------------------------------------------------


def test_reader_reads_idps_and_skips_the_rest(aggregate, pair) -> None:
    data = aggregate(
        extra_entities=[IDP_NO_REDIRECT, IDP_SAML1, IDP_NO_CERT, IDP_FINNISH]
    )
    # A comment is outside the signature: it must not cut a domain short.
    data = data.replace(b">uni0.example.org<", b">uni0.example<!---->.org<", 1)
    metadata = _read(data, pair[1])
    assert metadata.signed and metadata.non_idps == 3  # the SPs
    assert metadata.skipped == {SKIP_NO_SSO: 2, SKIP_NO_CERT: 1}
    assert len(metadata.idps) == 7
    first = metadata.idps[0]
    assert first.entity_id == "https://idp.uni0.example.org/idp/shibboleth"
    assert first.display_name == "University 0 of Example"  # en, not et
    assert first.sso_url.endswith("/profile/SAML2/Redirect/SSO")
    assert first.domains == ("uni0.example.org", "staff.uni0.example.org")
    assert [idp.research_and_scholarship for idp in metadata.idps[:2]] == [True, False]
    assert "\n" not in first.signing_cert and not first.signing_cert.startswith("---")
    odd = metadata.idps[-1]  # no English mdui name: the only one; R&S as category
    assert (odd.display_name, odd.research_and_scholarship) == ("Yliopisto", True)
    assert odd.signing_cert == "QUJDREVG"


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        ("unsigned", "Unsigned"),
        ("tampered", "does not verify"),
        ("wrong_cert", "does not verify"),
        ("expired", "expired"),
        ("doctype", "DOCTYPE"),
        ("sha1", "does not accept"),
    ],
)
def test_reader_refuses(aggregate, pair, mangle: str, message: str) -> None:
    cert_pem = pair[1]
    if mangle == "expired":
        past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
        data = aggregate(valid_until=past)
    else:
        data = aggregate()
    if mangle == "unsigned":
        root = etree.fromstring(data)
        root.remove(root.find(f"{{{DS}}}Signature"))
        data = etree.tostring(root)
    elif mangle == "tampered":
        data = data.replace(b"University 3 of Example", b"University 3 of Evil")
    elif mangle == "wrong_cert":
        cert_pem = test_signing_pair()[1]
    elif mangle == "doctype":
        doctype = b'<!DOCTYPE x [<!ENTITY a "aaaa">]>'
        data = data.replace(b"?>", b"?>" + doctype, 1)
    elif mangle == "sha1":
        data = data.replace(b"2001/04/xmlenc#sha256", b"2000/09/xmldsig#sha1")
    with pytest.raises(FederationMetadataError, match=message):
        _read(data, cert_pem)


def test_reader_refuses_a_signed_root_wrapped_in_an_unsigned_one(
    aggregate, pair
) -> None:
    """The genuine signed aggregate inside an attacker's root with an extra
    IdP: whether the signature stays inside or moves to the new root."""
    signed = etree.fromstring(aggregate(idps=2))
    for move_signature, new_id, message in [
        (False, "_evil", "Unsigned"),
        (True, "_evil", "does not cover"),
        (True, None, "Several elements carry"),
    ]:
        inner = etree.fromstring(etree.tostring(signed))
        outer = etree.Element(f"{{{MD}}}EntitiesDescriptor", nsmap=inner.nsmap)
        outer.set("ID", new_id or inner.get("ID"))  # None: the same ID twice
        outer.set("validUntil", inner.get("validUntil"))
        if move_signature:
            outer.append(inner.find(f"{{{DS}}}Signature"))
        outer.append(inner)
        outer.append(
            etree.fromstring(IDP_NO_REDIRECT.replace(">", f' xmlns:md="{MD}">', 1))
        )
        with pytest.raises(FederationMetadataError, match=message):
            _read(etree.tostring(outer), pair[1])


def test_reader_refuses_a_reference_to_a_child(aggregate, pair) -> None:
    """A genuine signature over one entity does not vouch for its siblings,
    although xmlsec alone would call it valid."""
    root = etree.fromstring(aggregate(idps=2))
    root.remove(root.find(f"{{{DS}}}Signature"))
    root[0].set("ID", "_child")
    _sign(root, pair[0], "#_child")
    data = etree.tostring(root)
    with pytest.raises(FederationMetadataError, match="does not cover the root"):
        _read(data, pair[1])


def test_reader_needs_a_cert_unless_unsigned_is_allowed(aggregate) -> None:
    with pytest.raises(FederationMetadataError, match="No certificate"):
        federation_metadata_read(source=aggregate(), cert_pem=None)
    metadata = federation_metadata_read(
        source=aggregate(), cert_pem=None, allow_unsigned=True
    )
    assert len(metadata.idps) == 6 and not metadata.signed


def test_command_exits_non_zero_with_the_reason(aggregate, files, capsys) -> None:
    from sso.management.commands.importidps import Command

    args = files(aggregate().replace(b"University 1 of", b"University 9 of"))
    argv = ["manage.py", "importidps", *args, "--federation", "t", "--skip-checks"]
    with pytest.raises(SystemExit) as exited:
        Command().run_from_argv(argv)
    assert exited.value.code != 0
    assert (
        "refused: The aggregate's signature does not verify" in capsys.readouterr().err
    )


# -- the import ----------------------------------------------------------------


def _import(*args: str, **options) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    out, err = io.StringIO(), io.StringIO()
    call_command("importidps", *args, stdout=out, stderr=err, **options)
    return out.getvalue().strip(), err.getvalue()


def test_import_registers_apps_and_institutions(db, aggregate, files) -> None:
    from allauth.socialaccount.models import SocialApp

    from sso.models import Institution

    out, _ = _import(
        *files(aggregate(extra_entities=[IDP_NO_REDIRECT])), federation="testfed"
    )
    assert out == (
        "testfed: 6 created, 0 updated, 0 unchanged, 0 disabled "
        "(1 entities skipped: no SAML 2 SSO endpoint)"
    )
    entity_id = "https://idp.uni1.example.org/idp/shibboleth"
    institution = Institution.objects.get(entity_id=entity_id)
    assert institution.provider_id.startswith("testfed-idp-uni1-example-org-")
    assert len(institution.provider_id) == len("testfed-idp-uni1-example-org-") + 8
    assert (institution.protocol, institution.federation) == ("saml", "testfed")
    assert institution.name == "University 1 of Example"
    assert institution.domains == "uni1.example.org staff.uni1.example.org"
    assert "university 1 of example" in institution.search_text
    assert institution.enabled and not institution.research_and_scholarship
    assert Institution.objects.filter(research_and_scholarship=True).count() == 3
    app = SocialApp.objects.get(provider_id=institution.provider_id)
    assert (app.provider, app.client_id, app.name) == (
        "saml",
        "testfed",
        institution.name,
    )
    assert app.settings["federation"] == "testfed"
    assert app.settings["idp"]["entity_id"] == entity_id
    assert app.settings["idp"]["sso_url"].endswith("/idp/profile/SAML2/Redirect/SSO")
    assert app.settings["idp"]["x509cert"].startswith("MII")

    out, _ = _import(*files(aggregate()), federation="testfed")
    assert out.startswith("testfed: 0 created, 0 updated, 6 unchanged, 0 disabled")


def test_research_and_scholarship_only(db, aggregate, files) -> None:
    from sso.models import Institution

    args = files(aggregate())
    out, _ = _import(*args, federation="rs", research_and_scholarship_only=True)
    assert out.startswith("rs: 3 created, 0 updated, 0 unchanged, 0 disabled")
    out, _ = _import(*args, federation="rs")
    assert out.startswith("rs: 3 created, 0 updated, 3 unchanged, 0 disabled")
    out, _ = _import(*args, "--research-and-scholarship-only", federation="rs")
    assert out.startswith("rs: 0 created, 0 updated, 3 unchanged, 3 disabled")
    assert set(
        Institution.objects.filter(enabled=True).values_list(
            "research_and_scholarship", flat=True
        )
    ) == {True}


def test_changed_file_updates_disables_and_re_enables(db, aggregate, files) -> None:
    from allauth.socialaccount.models import SocialApp

    from sso.models import Institution

    _import(*files(aggregate()), federation="f")
    # IdPs 0-3 only; R&S now every third: IdPs 2 and 3 change, 4 and 5 leave.
    out, _ = _import(
        *files(aggregate(idps=4, research_and_scholarship_every=3)), federation="f"
    )
    assert out.startswith("f: 0 created, 2 updated, 2 unchanged, 2 disabled")
    gone = Institution.objects.filter(enabled=False)
    assert {i.entity_id.split(".")[1] for i in gone} == {"uni4", "uni5"}
    assert not SocialApp.objects.filter(provider_id__in=[i.provider_id for i in gone])
    assert SocialApp.objects.filter(client_id="f").count() == 4
    out, _ = _import(*files(aggregate()), federation="f")
    assert out.startswith("f: 0 created, 4 updated, 2 unchanged, 0 disabled")
    assert Institution.objects.filter(enabled=True).count() == 6
    assert SocialApp.objects.filter(client_id="f").count() == 6


def test_service_updates_name_endpoint_cert_and_domains(db, aggregate, pair) -> None:
    from allauth.socialaccount.models import SocialApp

    from sso.federation_import import federation_import
    from sso.models import Institution

    idps = _read(aggregate(idps=2), pair[1]).idps
    federation_import(federation="svc", idps=idps)
    changed = dataclasses.replace(
        idps[0],
        display_name="A renamed university with a name longer than forty characters",
        sso_url="https://new.example.org/sso",
        signing_cert="TkVX",
        domains=("new.example.org",),
    )
    result = federation_import(federation="svc", idps=[changed, idps[1]])
    assert (result.updated, result.unchanged) == (1, 1)
    institution = Institution.objects.get(entity_id=changed.entity_id)
    assert (institution.name, institution.domains) == (
        changed.display_name,
        "new.example.org",
    )
    app = SocialApp.objects.get(provider_id=institution.provider_id)
    assert len(app.name) == 40 and app.name.endswith("…")
    assert app.settings["idp"]["sso_url"] == "https://new.example.org/sso"
    assert app.settings["idp"]["x509cert"] == "TkVX"


def test_service_refuses_bad_names_and_emptying_a_federation(
    db, aggregate, pair
) -> None:
    from sso.federation_import import FederationImportError, federation_import

    idps = _read(aggregate(idps=2), pair[1]).idps
    for bad in ["", "EduGAIN", "edu gain", "x" * 65, "-edugain", "edu/gain"]:
        with pytest.raises(FederationImportError, match="must be 1-64"):
            federation_import(federation=bad, idps=idps)
    federation_import(federation="e", idps=idps)
    with pytest.raises(FederationImportError, match="refusing to disable all 2"):
        federation_import(federation="e", idps=[])


def test_command_needs_a_cert_and_warns_when_unsigned(
    db, aggregate, files, settings
) -> None:
    settings.SAML_METADATA_CERT_FILE = None
    path, _flag, cert_path = files(aggregate())
    with pytest.raises(CommandError, match="No certificate"):
        _import(path, federation="u")
    out, err = _import(path, "--allow-unsigned", federation="u")
    assert "NOT checked" in err and out.startswith("u: 6 created")
    settings.SAML_METADATA_CERT_FILE = cert_path
    out, _ = _import(path, federation="u")
    assert out.startswith("u: 0 created, 0 updated, 6 unchanged")
    with pytest.raises(CommandError, match=r"refused: .*does not verify"):
        _import(
            *files(aggregate().replace(b"Example<", b"Elsewhere<", 1)), federation="u"
        )


def test_import_of_5000_idps_takes_a_handful_of_queries(
    db, aggregate, pair, django_assert_max_num_queries
) -> None:
    from sso.federation_import import federation_import

    started = time.perf_counter()
    data = aggregate(idps=5000)
    built = time.perf_counter()
    idps = _read(data, pair[1]).idps
    read = time.perf_counter()
    with django_assert_max_num_queries(20) as first:
        result = federation_import(federation="big", idps=idps)
    imported = time.perf_counter()
    assert result.created == 5000
    with django_assert_max_num_queries(8) as again:
        assert federation_import(federation="big", idps=idps).unchanged == 5000
    rerun = time.perf_counter()
    with django_assert_max_num_queries(20) as changed:
        result = federation_import(federation="big", idps=idps[:4990])
    assert (result.unchanged, result.disabled) == (4990, 10)
    print(
        f"\n5000 IdPs, {len(data) / 1e6:.1f} MB: build {built - started:.2f}s, "
        f"read+verify {read - built:.2f}s, import {imported - read:.2f}s "
        f"({len(first)} queries), re-run {rerun - imported:.2f}s "
        f"({len(again)} queries), 10 disabled in {len(changed)} queries"
    )
