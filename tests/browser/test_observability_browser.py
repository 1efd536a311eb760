"""The snippet in headless Chromium: posthog-js from the fake host, events at the fake.

Runs on a plain tornado app carrying the transform, so it needs no Jupyter server;
the full Lab flow lives in tests/server/test_observability_server.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import tornado.web

from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.observability.posthog_client import ObservabilitySettings
from server_extension.html_snippet import SnippetTransforms
from tests.fakes.posthog_server import FakePostHog
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP_UA
from tests.support.observability_tornado import TornadoThread

EVIL = "</script><script>alert(1)</script>"
MALLORY = Principal(
    user_id=66, email=f"m{EVIL}@evil.com", name=f"Mallory {EVIL}", groups=(), is_admin=False,
    auth="session", credential_id="s2",
)
PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>Agnes test</title>
<link rel="icon" href="data:,"></head>
<body><div class="jp-InputArea">secret code</div>
<button id="go" onclick="history.pushState({}, '', '/lab/tree/other.ipynb')">go</button>
</body></html>"""


class Page(tornado.web.RequestHandler):
    def prepare(self) -> None:
        self.request.agnes_principal = MALLORY

    def get(self, *_: Any) -> None:
        self.write(PAGE)


@pytest.fixture
def stack() -> Iterator[tuple[FakePostHog, TornadoThread]]:
    with FakePostHog(serve_js=True) as ph:
        settings = ObservabilitySettings(
            api_key="phc_browser", host=ph.url, identify_pii="full", environment="browser-test",
            release="r1",
        )
        app = tornado.web.Application([(r"/lab(.*)", Page)], compress_response=True)
        app.transforms.insert(0, SnippetTransforms(settings, "/"))
        with TornadoThread(app) as srv:
            yield ph, srv


def test_snippet_in_chromium(stack: tuple[FakePostHog, TornadoThread]) -> None:
    from playwright.sync_api import sync_playwright

    ph, srv = stack
    console_errors: list[str] = []
    page_errors: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # posthog-js drops events from a "HeadlessChrome" user agent as a bot.
            page = browser.new_page(user_agent=DESKTOP_UA)
            page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(srv.url + "/lab", wait_until="load")
            page.wait_for_function("() => window.posthog && window.posthog.__loaded", timeout=15000)

            # The SPA navigates: history_change pageviews.
            page.click("#go")
            events = ph.wait_for_events(
                lambda evs: sum(e.get("event") == "$pageview" for e in evs) >= 2, timeout=20
            )
            # Errors reach captureException (after the checks on snippet errors below).
            page.evaluate("setTimeout(() => { throw new Error('boom-from-test') }, 0)")
            page.evaluate("() => { Promise.reject(new Error('rejected-from-test')); }")
            ph.wait_for_events(
                lambda evs: sum(e.get("event") == "$exception" for e in evs) >= 2, timeout=20
            )
        finally:
            browser.close()

    static = [r for r in ph.requests if r["path"] == "/static/array.js"]
    assert static, "posthog-js was not loaded from the fake host"
    pageviews = [e for e in events if e.get("event") == "$pageview"]
    props = pageviews[-1]["properties"]
    assert props["environment"] == "browser-test"
    assert props["release"] == "r1"
    assert props["user_id"] == "66"
    assert props["distinct_id"] == "66"
    assert props["$current_url"].endswith("/lab/tree/other.ipynb")
    assert dialogs == [], "the escaping attack ran a script"
    assert console_errors == [], console_errors
    # The only page errors are the two we threw on purpose.
    assert all("from-test" in e for e in page_errors), page_errors
    exc = [e for e in ph.events if e.get("event") == "$exception"]
    assert {e["properties"]["$exception_list"][0]["value"] for e in exc} >= {
        "boom-from-test", "rejected-from-test",
    }
