"""A canary key goes down every path a key can take; afterwards it is found in
no log record, no SQL statement, no database column, no error body and no page
other than the one response that created it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re

import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.keycache import KeyCache, LastUsedWriter
from accounts.keyerrors import invalid_key_error_body
from accounts.keyformat import key_from_headers
from accounts.models import User
from accounts.selectors import apikey_authenticate
from accounts.tests.conftest import login

pytestmark = pytest.mark.django_db(transaction=True)


def _leaks(text: str, raws: list[str]) -> list[str]:
    """The raw keys, or their secret parts, found in `text`."""
    return [raw for raw in raws if raw in text or raw[17:-6] in text]


def _text_columns() -> list[tuple[str, str]]:
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            for column in connection.introspection.get_table_description(cursor, table):
                found.append((table, column.name))
    return found


def _database_leaks(raws: list[str]) -> list[str]:
    leaks = []
    with connection.cursor() as cursor:
        for table, column in _text_columns():
            qn = connection.ops.quote_name
            cast = "::text" if connection.vendor == "postgresql" else ""
            for raw in raws:
                cursor.execute(
                    f"SELECT COUNT(*) FROM {qn(table)} "
                    f"WHERE {qn(column)}{cast} LIKE %s OR {qn(column)}{cast} LIKE %s",
                    [f"%{raw}%", f"%{raw[17:-6]}%"],
                )
                if cursor.fetchone()[0]:
                    leaks.append(f"{table}.{column}")
    # Session data is signed and base64-encoded: decode it to look inside.
    for session in Session.objects.all():
        if _leaks(json.dumps(session.get_decoded()), raws):
            leaks.append(f"django_session {session.pk}")
    return leaks


def test_the_canary_key_never_leaks(
    alice: User,
    staff: User,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    # SQL statements with their parameters are logged too, and checked.
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    raws: list[str] = []
    pages: list[str] = []
    with CaptureQueriesContext(connection) as queries:
        client = login(Client(), alice)

        # 1. Made on the Settings page: the one response that may show it.
        created = client.post(
            "/settings/account/keys/", {"name": "canary"}, follow=True
        )
        canary = re.search(r'id="new-key"[^>]*>([^<]+)<', created.content.decode())[1]
        raws.append(canary)
        pages.append(client.get("/settings/account/").content.decode())

        # 2. Used: the sync gate, the proxy's cached gate, header parsing.
        assert apikey_authenticate(raw_key=canary) is not None
        cache = KeyCache(writer=LastUsedWriter(delay=0))

        async def use() -> None:
            for header in (f"Bearer {canary}", f"bearer   {canary}"):
                presented = key_from_headers(authorization=header, x_api_key=None)
                assert await cache.get(presented) is not None
            await cache.drain()

        asyncio.run(use())

        # 3. Made and rolled through the JSON API; listed; errors provoked.
        client.get("/settings/account/")
        token = client.cookies["csrftoken"].value
        made = client.post(
            "/api/keys/",
            {"name": "api canary"},
            "application/json",
            HTTP_X_CSRFTOKEN=token,
        ).json()
        raws.append(made["key"])
        rolled = client.post(
            f"/api/keys/{made['id']}/roll/",
            {"grace_seconds": 60},
            "application/json",
            HTTP_X_CSRFTOKEN=token,
        ).json()
        raws.append(rolled["key"])
        pages.append(client.get("/api/keys/").content.decode())
        # A key pasted into a name or model list is refused, never stored.
        for pasted in ({"name": canary}, {"name": "x", "allowed_models": [canary]}):
            response = client.post(
                "/api/keys/", pasted, "application/json", HTTP_X_CSRFTOKEN=token
            )
            assert response.status_code == 400
            pages.append(response.content.decode())
        for pasted in ({"name": f"my {canary}"}, {"name": "x", "models": canary}):
            response = client.post("/settings/account/keys/", pasted)
            assert response.status_code == 400
            assert "This looks like an API key" in response.content.decode()
            pages.append(response.content.decode())

        # 4. Rolled on the page, revoked, refused.
        page_key = apikey_authenticate(raw_key=canary)
        rolled_page = client.post(
            f"/settings/account/keys/{page_key.pk}/roll/",
            {"grace_seconds": "0"},
            follow=True,
        )
        raws.append(
            re.search(r'id="new-key"[^>]*>([^<]+)<', rolled_page.content.decode())[1]
        )
        pages.append(client.get("/settings/account/").content.decode())
        assert apikey_authenticate(raw_key=canary) is None
        pages.append(invalid_key_error_body(presented=canary).decode())
        pages.append(
            Client()
            .post(
                "/api/keys/",
                {},
                "application/json",
                HTTP_AUTHORIZATION=f"Bearer {canary}",
            )
            .content.decode()
        )

        # 5. Operators: revokekey with the key on stdin, admin pages.
        out = io.StringIO()
        monkeypatch.setattr("sys.stdin", io.StringIO(rolled["key"] + "\n"))
        call_command("revokekey", "-", stdout=out)
        pages.append(out.getvalue())
        admin = Client()
        admin.force_login(staff)
        pages.append(admin.get("/admin/accounts/apikey/").content.decode())
        pages.append(
            admin.get(f"/admin/accounts/apikey/{page_key.pk}/change/").content.decode()
        )
        pages.append(admin.get("/admin/accounts/user/").content.decode())

    assert all(not _leaks(page, raws) for page in pages), [
        page[:300] for page in pages if _leaks(page, raws)
    ]
    logged = "\n".join(
        record.getMessage() + str(record.args) + (record.exc_text or "")
        for record in caplog.records
    )
    assert not _leaks(logged, raws)
    sql = "\n".join(query["sql"] for query in queries.captured_queries)
    assert not _leaks(sql, raws)
    assert _database_leaks(raws) == []


def test_the_scans_would_find_a_planted_key(alice: User) -> None:
    """The checks above are only worth something if they can fail."""
    from accounts.models import ApiKey
    from tests.factories import apikey_make

    issued = apikey_make(user=alice)
    assert _database_leaks([issued.raw]) == []
    ApiKey.objects.filter(pk=issued.key.pk).update(name=issued.raw[17:-6])
    assert _database_leaks([issued.raw]) == ["accounts_apikey.name"]
    assert _leaks(f"header was Bearer {issued.raw}", [issued.raw])
