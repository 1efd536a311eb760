"""End to end: `jupyter agnes serve` with PostHog on, a login link, /lab in Chromium.

Asserts that posthog-js loaded from the fake host, that a `$pageview` with the
`environment` super-property and the user id reached the fake, and that the console
shows no errors from the snippet.
"""

from __future__ import annotations

import re
from pathlib import Path

import requests

from tests.fakes.posthog_server import FakePostHog
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP_UA
from tests.support.server_process import agnes_cli, agnes_server


def test_lab_pageview_reaches_posthog(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    data_dir = tmp_path / "data"
    root = tmp_path / "root"
    root.mkdir()
    with FakePostHog(serve_js=True) as ph:
        env = {"POSTHOG_API_KEY": "phc_e2e", "POSTHOG_HOST": ph.url,
               "POSTHOG_ENVIRONMENT": "e2e", "POSTHOG_IDENTIFY_PII": "id"}
        with agnes_server(data_dir, env=env, root_dir=root) as server:
            agnes_cli("bootstrap", "--email", "e2e@example.com", "--data-dir", str(data_dir),
                      env=env)
            link = agnes_cli("login-link", "--email", "e2e@example.com", "--data-dir",
                             str(data_dir), env=env).stdout.strip()
            console_errors: list[str] = []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(user_agent=DESKTOP_UA)
                    page.on("console", lambda m: m.type == "error" and console_errors.append(
                        m.text))
                    page.goto(link, wait_until="load")
                    # Lab, in the signed-in user's own workspace.
                    assert re.search(r"/lab/workspaces/agnes-user-\d+$", page.url.rstrip("/"))
                    page.wait_for_function(
                        "() => window.posthog && window.posthog.__loaded", timeout=30000
                    )
                    me = page.evaluate(
                        "() => fetch('/agnes/api/me').then(r => r.json())"
                    )
                    events = ph.wait_for_events(
                        lambda evs: any(e.get("event") == "$pageview"
                                        and e["properties"].get("user_id") for e in evs),
                        timeout=30,
                    )
                finally:
                    browser.close()
            assert requests.get(server.url + "agnes/api/health", timeout=5).ok
    assert any(r["path"] == "/static/array.js" for r in ph.requests)
    views = [e for e in events if e.get("event") == "$pageview" and e["properties"].get("user_id")]
    props = views[-1]["properties"]
    assert props["environment"] == "e2e"
    assert props["user_id"] == str(me["id"])
    snippet_errors = [m for m in console_errors if "posthog" in m.lower() or "agnes" in m.lower()]
    assert snippet_errors == [], console_errors
