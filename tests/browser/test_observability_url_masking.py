"""An email typed into the audit page's actor filter lands in the page's URL (a GET form);
the `$pageview` posthog-js sends for it has that parameter masked."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.posthog_server import FakePostHog
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP_UA
from tests.support.server_process import agnes_cli, agnes_server

ADMIN = "audit-admin@example.com"
FILTERED = "someone.private@example.com"


def test_audit_filter_emails_are_masked_in_pageview_urls(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    data_dir = tmp_path / "data"
    root = tmp_path / "root"
    root.mkdir()
    with FakePostHog(serve_js=True) as ph:
        env = {"POSTHOG_API_KEY": "phc_mask", "POSTHOG_HOST": ph.url,
               "POSTHOG_IDENTIFY_PII": "none"}
        d = ("--data-dir", str(data_dir))
        agnes_cli("bootstrap", "--email", ADMIN, *d, env=env)
        with agnes_server(data_dir, env=env, root_dir=root) as server:
            link = agnes_cli("login-link", "--email", ADMIN, *d, env=env).stdout.strip()
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(user_agent=DESKTOP_UA)
                    page.goto(link, wait_until="load")
                    page.goto(server.url + f"agnes/admin/audit?actor={FILTERED}&limit=50",
                              wait_until="load")
                    page.wait_for_function(
                        "() => window.posthog && window.posthog.__loaded", timeout=30000
                    )
                    events = ph.wait_for_events(
                        lambda evs: any(e.get("event") == "$pageview"
                                        and "admin/audit" in str(e["properties"].get(
                                            "$current_url")) for e in evs),
                        timeout=30,
                    )
                finally:
                    browser.close()
    views = [e for e in events if e.get("event") == "$pageview"
             and "admin/audit" in str(e["properties"].get("$current_url"))]
    url = views[-1]["properties"]["$current_url"]
    assert "actor=" in url and "limit=50" in url, url  # the parameter is there, masked
    assert FILTERED not in url and "someone.private" not in url, url
    assert FILTERED not in ph.everything()
