"""Settings > Account to the OpenAI SDK in under a minute: create a key in the
browser, copy it with the page's button, list models with it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import PASSWORD
from tests.fixtures_proxy import ProxyRig

pytestmark = pytest.mark.browser


def test_a_key_made_on_the_settings_page_works_with_the_openai_sdk(
    proxy: ProxyRig, chromium: Any
) -> None:
    from openai import OpenAI

    context = chromium.new_context(
        permissions=["clipboard-read", "clipboard-write"], base_url=proxy.server.url
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        page.goto("/accounts/login/")
        page.fill("input[name=login]", proxy.user.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(proxy.server.url + "/**")
        page.goto("/settings/account/")
        page.fill("input[name=name]", "notebook")
        page.get_by_role("button", name="Create key").click()
        shown = page.get_by_test_id("new-key").inner_text().strip()
        page.locator("button.copy[data-copy-target=new-key]").click()
        copied = page.evaluate("navigator.clipboard.readText()")
        python_snippet = page.locator("#snippet-python").inner_text()
    finally:
        context.close()
    assert copied == shown and copied.startswith("sk-")
    assert f'base_url="{proxy.base_url}"' in python_snippet
    models = OpenAI(
        base_url=proxy.base_url, api_key=copied, max_retries=0
    ).models.list()
    assert "fake-chat" in {model.id for model in models}
