""" "Choose your institution": what the search finds and in which order, among
5,000 institutions (a federation the size of eduGAIN), in a bounded number of
queries. Rows are written with bulk_create, as importidps writes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from allauth.socialaccount.models import SocialApp
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sso.models import Institution, institution_search_text
from sso.selectors import (
    MAX_QUERY_LENGTH,
    institution_search,
    sign_in_options,
)

pytestmark = pytest.mark.django_db

FEDERATION = "edugain"
FILLER = 5000
# What one search may cost: the institutions, the apps configured one by one
# (and the descriptions of those, when there are any).
MAX_QUERIES = 3


def _institution(
    provider_id: str,
    name: str,
    domains: str = "",
    *,
    federation: str = FEDERATION,
    enabled: bool = True,
) -> Institution:
    return Institution(
        provider_id=provider_id,
        protocol=Institution.PROTOCOL_SAML,
        name=name,
        domains=domains,
        search_text=institution_search_text(name=name, domains=domains),
        entity_id=f"https://{provider_id}.example/idp" if federation else "",
        federation=federation,
        enabled=enabled,
    )


@pytest.fixture
def institutions() -> None:
    """5,000 generated IdPs ("University N of Example", uniN.example.org)
    and a handful of real-looking ones."""
    rows = [
        _institution(
            f"{FEDERATION}-uni{n}",
            f"University {n} of Example",
            f"uni{n}.example.org staff.uni{n}.example.org",
        )
        for n in range(FILLER)
    ]
    rows += [
        _institution("edugain-ut", "Tartu Ülikool", "ut.ee cs.ut.ee"),
        _institution("edugain-tartu-art", "Estonian Academy of Arts in Tartu"),
        _institution("edugain-tum", "Technische Universität München", "tum.de"),
        _institution(
            "edugain-gone", "Closed College of Tartu", "gone.ee", enabled=False
        ),
    ]
    # More matches for "college" than the search fetches, all sorting (by
    # name) before the one whose name starts with the query.
    rows += [
        _institution(f"edugain-art{n:02}", f"Art College {n:02}") for n in range(60)
    ]
    rows.append(_institution("edugain-coa", "College of Arts"))
    Institution.objects.bulk_create(rows, batch_size=1000)


def _ids(query: str, **kwargs: Any) -> list[str]:
    return [choice.provider_id for choice in institution_search(query=query, **kwargs)]


def test_every_word_of_the_name_in_any_order_and_case(institutions: None) -> None:
    assert _ids("University 4321 of Example") == ["edugain-uni4321"]
    assert _ids("EXAMPLE of   4321 university") == ["edugain-uni4321"]
    assert _ids("  uNiVeRsItY\t4321 ") == ["edugain-uni4321"]
    # Every word must be there.
    assert _ids("university 4321 of elsewhere") == []


def test_names_with_accents_are_found_in_any_case(institutions: None) -> None:
    assert _ids("ülikool") == ["edugain-ut"]
    assert _ids("TARTU ÜLIKOOL") == ["edugain-ut"]
    assert _ids("universität münchen") == ["edugain-tum"]
    assert _ids("UNIVERSITÄT") == ["edugain-tum"]


def test_names_starting_with_the_query_come_first(institutions: None) -> None:
    # "Estonian Academy of Arts in Tartu" sorts first by name; the one whose
    # name starts with the query goes before it.
    assert _ids("tartu") == ["edugain-ut", "edugain-tartu-art"]


def test_ranking_happens_before_the_results_are_cut(institutions: None) -> None:
    """61 colleges match; by name the 60 "Art College"s come first. The one
    whose name starts with the query must still lead."""
    found = _ids("college")
    assert len(found) == 10
    assert found[0] == "edugain-coa"
    assert found[1:] == [f"edugain-art{n:02}" for n in range(9)]


def test_an_e_mail_address_finds_its_domain_and_parent_domains(
    institutions: None,
) -> None:
    assert _ids("alice@ut.ee") == ["edugain-ut"]
    assert _ids("alice@cs.ut.ee") == ["edugain-ut"]  # a listed subdomain
    assert _ids("alice@math.cs.ut.ee") == ["edugain-ut"]  # parent: ut.ee
    assert _ids("Alice@UT.EE") == ["edugain-ut"]
    assert _ids("alice@uni1234.example.org") == ["edugain-uni1234"]
    assert _ids("bob@staff.uni1234.example.org") == ["edugain-uni1234"]
    assert _ids("uni1234.example.org") == ["edugain-uni1234"]


def test_domains_match_whole_not_in_part(institutions: None) -> None:
    assert _ids("alice@t.ee") == []  # not ut.ee
    assert _ids("alice@ut.ee.evil.example") == []  # ut.ee only as a prefix
    # uni123.example.org, not uni1234.example.org nor uni1123.example.org.
    assert _ids("alice@uni123.example.org") == ["edugain-uni123"]


def test_the_domain_match_leads_whatever_the_names_say(institutions: None) -> None:
    """A name starting with the query comes after the institution whose
    domain the query is."""
    Institution.objects.bulk_create(
        [_institution("edugain-alumni", "ut.ee Alumni Portal", "alumni.example")]
    )
    assert _ids("ut.ee") == ["edugain-ut", "edugain-alumni"]
    assert _ids("alumni") == ["edugain-alumni"]


def test_disabled_institutions_are_hidden(institutions: None) -> None:
    assert _ids("closed college") == []
    assert _ids("alice@gone.ee") == []
    assert "edugain-gone" not in _ids("tartu")


def test_at_most_ten_results(client: Any, institutions: None) -> None:
    assert len(_ids("univ")) == 10
    assert len(_ids("univ", limit=3)) == 3
    response = client.get("/accounts/institutions/search/", {"q": "univ"})
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 10
    assert all(r["name"].startswith("University ") for r in results)
    assert set(results[0]) == {"id", "name", "domains"}


def test_the_query_is_capped(institutions: None) -> None:
    with CaptureQueriesContext(connection) as captured:
        assert _ids("x" * 50_000) == []
    sql = " ".join(query["sql"] for query in captured.captured_queries)
    assert "x" * MAX_QUERY_LENGTH in sql
    assert "x" * (MAX_QUERY_LENGTH + 1) not in sql
    # Many words and many dots do not multiply without end either.
    assert len(captured.captured_queries) <= MAX_QUERIES
    long_query = " ".join(["a.b.c.d.e.f"] * 200)
    with CaptureQueriesContext(connection) as captured:
        assert _ids(long_query) == []
    assert len(captured.captured_queries) <= MAX_QUERIES
    assert sum(len(q["sql"]) for q in captured.captured_queries) < 20_000


def test_blank_queries_find_nothing_without_asking(
    institutions: None, django_assert_num_queries: Callable[..., Any]
) -> None:
    with django_assert_num_queries(0):
        assert _ids("") == []
        assert _ids(" \t\n ") == []


@pytest.mark.parametrize(
    "query",
    [
        "University 4321 of Example",
        "univ",
        "of",
        "someone@uni4321.example.org",
        "someone@cs.uni4321.example.org",
        "no such college",
    ],
)
def test_queries_are_bounded_with_5000_institutions(
    client: Any,
    institutions: None,
    query: str,
    django_assert_max_num_queries: Callable[..., Any],
) -> None:
    with django_assert_max_num_queries(MAX_QUERIES):
        institution_search(query=query)
    with django_assert_max_num_queries(MAX_QUERIES):
        assert client.get(
            "/accounts/institutions/search/", {"q": query}
        ).status_code == (200)


@pytest.fixture
def federation_apps() -> None:
    """A SocialApp per federated institution (with its IdP's certificate,
    as importidps makes them) and one SAML app configured by hand."""
    cert = "MII" + "A" * 1200
    SocialApp.objects.bulk_create(
        [
            SocialApp(
                provider="saml",
                provider_id=f"{FEDERATION}-uni{n}",
                name=f"University {n} of Example",
                client_id=FEDERATION,
                settings={
                    "idp": {
                        "entity_id": f"https://idp.uni{n}.example.org/idp",
                        "sso_url": f"https://idp.uni{n}.example.org/sso",
                        "x509cert": cert,
                    },
                    "federation": FEDERATION,
                    "verified_email": [f"uni{n}.example.org"],
                },
            )
            for n in range(FILLER)
        ],
        batch_size=1000,
    )
    SocialApp.objects.create(
        provider="saml",
        provider_id="hand-made-saml",
        name="Hand-made Research Institute",
        client_id="handmade",
        settings={"idp": {"entity_id": "https://idp.handmade.example/idp"}},
    )


def test_federation_apps_are_never_loaded_by_the_search(
    institutions: None,
    federation_apps: None,
    monkeypatch: pytest.MonkeyPatch,
    django_assert_max_num_queries: Callable[..., Any],
) -> None:
    """Loading 5,000 apps (their certificates included) per keystroke cost
    ~80 ms; only the apps configured one by one are read."""
    loaded: list[str] = []
    from_db = SocialApp.from_db.__func__  # type: ignore[attr-defined]

    def counting(cls: type[SocialApp], *args: Any) -> SocialApp:
        app = from_db(cls, *args)
        loaded.append(app.provider_id)
        return app

    monkeypatch.setattr(SocialApp, "from_db", classmethod(counting))
    with django_assert_max_num_queries(MAX_QUERIES):
        found = _ids("research institute")
    assert found == ["hand-made-saml"]
    with django_assert_max_num_queries(MAX_QUERIES):
        assert _ids("univ")[0].startswith(f"{FEDERATION}-uni")
    with django_assert_max_num_queries(MAX_QUERIES):
        options = sign_in_options()
    assert [b.provider_id for b in options.buttons] == ["hand-made-saml"]
    assert options.searchable
    assert set(loaded) == {"hand-made-saml"}


def test_an_app_with_an_empty_federation_is_listed(db: None) -> None:
    """`federation` set but empty (an admin's edit) is no federation."""
    SocialApp.objects.create(
        provider="saml",
        provider_id="blank-federation",
        name="Blank Federation Institute",
        client_id="blank",
        settings={"federation": "", "idp": {}},
    )
    assert _ids("blank federation") == ["blank-federation"]
    assert [b.provider_id for b in sign_in_options().buttons] == ["blank-federation"]


def test_accents_do_not_matter_either_way(db: None) -> None:
    Institution.objects.create(
        provider_id="ut",
        protocol="saml",
        name="Tartu Ülikool",
        domains="ut.ee",
        search_text=institution_search_text(name="Tartu Ülikool", domains="ut.ee"),
    )
    for typed in ("ulikool", "ÜLIKOOL", "tartu ülik"):
        assert [c.provider_id for c in institution_search(query=typed)] == ["ut"], typed
