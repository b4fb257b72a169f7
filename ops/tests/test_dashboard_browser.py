"""The dashboard in chromium: reached from the admin index, under the CSP."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.factories import user_make
from tests.fixtures_proxy import ProxyRig

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_open_the_dashboard_from_the_admin_index(
    proxy: ProxyRig, page: Any, tmp_path: Any
) -> None:
    with proxy.http() as client:  # a request to show in the last 24 hours
        client.post(
            "/v1/chat/completions",
            json={
                "model": "fake-chat",
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    operator = user_make(username="operator", is_staff=True, is_superuser=True)
    django_client = Client()
    django_client.force_login(operator)
    page.context.add_cookies(
        [
            {"name": name, "value": morsel.value, "url": proxy.server.url}
            for name, morsel in django_client.cookies.items()
        ]
    )
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text
            and violations.append(message.text)
        ),
    )
    page.goto(proxy.server.url + "/admin/")
    page.click("#ops-dashboard-link a")
    page.wait_for_selector("#ops-backends")
    assert page.locator("#ops-backends tbody tr").first.inner_text().startswith("fake")
    assert "healthy" in page.locator("#ops-backends").inner_text()
    assert "1 of 4" not in page.locator("#ops-slots").inner_text()  # all done
    assert page.locator("#ops-traffic meter").count() == 24
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert violations == []
