"""The admin console in headless Chromium against a real `jupyter agnes serve`: an admin
adds a user and a group, puts the user in it, grants the group a table picked from the
catalog, and sees the table in the user's effective access; a POST without the XSRF
token is refused; a refusal shows the API's own message. Screenshots of each step go to
tests/browser/artifacts/ (git-ignored); docs/images/admin-*.png are copies of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jupyter_agnes.auth.admin_ops import LAST_ADMIN
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP_UA, shot
from tests.support.server_process import agnes_cli, agnes_server

REPO = Path(__file__).resolve().parents[2]
ADMIN, ANA = "admin@example.com", "ana@example.com"
TABLE = "orders"

NO_XSRF_POST = """async () => {
  const r = await fetch('/agnes/api/admin/groups', {method: 'POST',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name: 'sneaky'})});
  return r.status;
}"""


# A small sample source, through the sources API (404 where it does not exist yet).
ADD_SOURCE = """async () => {
  const token = document.querySelector('meta[name=agnes-xsrf]').content;
  const r = await fetch('/agnes/api/admin/sources', {method: 'POST',
    headers: {'Content-Type': 'application/json', 'X-XSRFToken': token},
    body: JSON.stringify({name: 'demo', type: 'sample', options: {rows: '100'}})});
  return r.status;
}"""


@pytest.fixture
def server(tmp_path: Path):
    data_dir, root = tmp_path / "data", tmp_path / "root"
    shutil.copytree(REPO / "notebooks" / "dashboards", root / "dashboards",
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    agnes_cli("sample-data", "--rows", "2000", "--data-dir", str(data_dir))
    agnes_cli("bootstrap", "--email", ADMIN, "--data-dir", str(data_dir))
    with agnes_server(data_dir, env={"POSTHOG_API_KEY": ""}, root_dir=root) as running:
        yield running


def submit(page, form: str) -> None:
    """Send an action form and wait for the page to reload with the outcome."""
    with page.expect_navigation(wait_until="load"):
        page.click(f"{form} button[type=submit]")


def test_an_admin_grants_a_table_and_sees_it_in_a_users_access(server) -> None:
    from playwright.sync_api import sync_playwright

    link = agnes_cli("login-link", "--email", ADMIN, "--url", server.url,
                     "--data-dir", str(server.data_dir)).stdout.strip()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(user_agent=DESKTOP_UA, viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            page.on("dialog", lambda dialog: dialog.accept())  # the confirmations
            page.goto(link, wait_until="load")
            page.goto(server.url + "agnes/admin", wait_until="load")
            assert page.is_visible("#agnes-admin-nav-users")

            # a user, then a group with that user in it
            page.goto(server.url + "agnes/admin/users", wait_until="load")
            page.fill("#agnes-new-user-email", ANA)
            page.fill("#agnes-new-user-name", "Ana Lyst")
            submit(page, "#agnes-add-user")
            assert page.inner_text("#agnes-admin-status") == "Done: Add user"
            assert ANA in page.inner_text("#agnes-users")
            shot(page, "admin-users")

            page.click("#agnes-admin-nav-groups")
            page.fill("#agnes-new-group-name", "analysts")
            page.fill("#agnes-new-group-description", "People who read the sales tables")
            submit(page, "#agnes-add-group")
            page.click("a.agnes-group-link:has-text('analysts')")
            page.fill("#agnes-new-member-email", ANA)
            submit(page, "#agnes-add-member")
            assert ANA in page.inner_text("#agnes-members")
            shot(page, "admin-group")

            # the table comes from the catalog's list
            page.click("#agnes-admin-nav-grants")
            tables = page.eval_on_selector_all(
                "#agnes-targets-table option", "els => els.map(e => e.value)"
            )
            assert TABLE in tables, tables
            page.select_option("#agnes-grant-group", "analysts")
            page.select_option("#agnes-grant-type", "table")
            assert page.get_attribute("#agnes-grant-resource", "list") == "agnes-targets-table"
            page.fill("#agnes-grant-resource", TABLE)
            submit(page, "#agnes-add-grant")
            assert "analysts" in page.inner_text("#agnes-grants")
            shot(page, "admin-grants")

            # the user's effective access, one click from the users list
            page.click("#agnes-admin-nav-users")
            page.click(f"a.agnes-user-access:has-text('{ANA}')")
            assert page.inner_text("#agnes-user-tables") == TABLE
            assert "analysts" in page.inner_text("#agnes-user-grants")
            shot(page, "admin-user-access")

            # ... and every step is in the audit log, found with the page's own filter
            page.goto(server.url + "agnes/admin/audit?target=analysts", wait_until="load")
            actions = page.locator("tr.audit-row .audit-action").all_inner_texts()
            assert actions[:3] == ["grant.add", "group.add_member", "group.create"], actions
            assert TABLE in page.locator("tr.audit-row").first.inner_text()

            # the API refuses a POST without the XSRF header, even with the session cookie
            assert page.evaluate(NO_XSRF_POST) == 403

            # refusals show the API's message in the alert
            page.goto(server.url + "agnes/admin/users", wait_until="load")
            page.click(f"tr:has(a:has-text('{ADMIN}')) button:has-text('Deactivate')")
            alert = page.wait_for_selector("#agnes-admin-message:not([hidden])")
            assert alert.inner_text() == "You cannot deactivate yourself"
            shot(page, "admin-refusal")
            page.click("#agnes-admin-nav-groups")
            page.click("a.agnes-group-link:has-text('Admin')")
            page.click("#agnes-members button:has-text('Remove')")
            alert = page.wait_for_selector("#agnes-admin-message:not([hidden])")
            assert alert.inner_text() == LAST_ADMIN

            page.click("#agnes-admin-nav-tokens")
            assert page.is_visible("#agnes-tokens")
            shot(page, "admin-tokens")
            page.click("#agnes-admin-nav-sync")
            submit(page, "#agnes-run-sync")
            assert page.query_selector_all("#agnes-jobs .agnes-job-status")
            # without the sources API (404), the page shows the jobs only; with it, each
            # source with its own "Run now"
            sources = page.evaluate(ADD_SOURCE)
            if sources == 404:
                page.wait_for_load_state("networkidle")  # the page's own fetch has answered
                assert page.is_hidden("#agnes-sources")
            else:
                assert sources == 201
                page.reload(wait_until="load")
                page.wait_for_selector("#agnes-sources:not([hidden])")
                assert page.inner_text("#agnes-source-demo") == "demo"
                submit(page, "#agnes-sources-table form")
                assert page.inner_text("#agnes-admin-status") == "Done: Run now"
                assert "demo" in page.inner_text("#agnes-jobs")
            shot(page, "admin-sync")
        finally:
            browser.close()
