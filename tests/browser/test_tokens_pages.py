"""The pages for people, in headless Chromium against a real `jupyter agnes serve`:
a viewer signs in with a login link, makes a token on /agnes/tokens, uses it with curl,
revokes it (confirming) and curl is then refused; /agnes/access shows their grants; an
analyst finds the pages in JupyterLab's "Agnes" menu. Screenshots go to
tests/browser/artifacts/ (tokens.png and access.png are the ones in docs/images/)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP_UA, shot
from tests.support.server_process import agnes_cli, agnes_server

REPO = Path(__file__).resolve().parents[2]
VIEWER, ANALYST = "viewer@example.com", "analyst@example.com"


def cli(data_dir: Path, *args: str) -> str:
    return agnes_cli(*args, "--data-dir", str(data_dir)).stdout.strip()


@pytest.fixture
def server(tmp_path: Path) -> Any:
    data_dir, root = tmp_path / "data", tmp_path / "root"
    shutil.copytree(REPO / "notebooks" / "dashboards", root / "dashboards")
    cli(data_dir, "sample-data", "--rows", "2000")
    cli(data_dir, "bootstrap", "--email", "admin@example.com")
    cli(data_dir, "group", "add-member", "sales", VIEWER)
    cli(data_dir, "group", "add-member", "analysts", ANALYST)
    cli(data_dir, "grant", "sales", "table", "orders")
    cli(data_dir, "grant", "sales", "dashboard", "sales", "--root-dir", str(root))
    cli(data_dir, "grant", "analysts", "lab", "*")
    with agnes_server(data_dir, root_dir=root) as running:
        yield running


def curl_me(url: str, token: str) -> tuple[int, dict[str, Any]]:
    out = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", "-H", f"Authorization: Bearer {token}", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    body, _, code = out.rpartition("\n")
    return int(code), json.loads(body)


def test_viewer_makes_uses_and_revokes_a_token(server: Any) -> None:
    from playwright.sync_api import sync_playwright

    link = cli(server.data_dir, "login-link", "--email", VIEWER)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(user_agent=DESKTOP_UA, viewport={"width": 1200, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(link, wait_until="load")
            assert page.url.startswith(server.url + "agnes/dashboards")
            page.click("#agnes-nav-tokens")
            page.wait_for_url(server.url + "agnes/tokens")
            assert page.is_visible("#agnes-tokens-empty")
            scopes = page.eval_on_selector_all("input[name=scopes]", "els => els.map(e => e.value)")
            assert scopes == ["data"]

            page.fill("#agnes-token-name", "laptop <script>")
            page.fill("#agnes-token-days", "7")
            page.click("#agnes-token-create")
            page.wait_for_selector("#agnes-new-token:not([hidden])")
            token = page.inner_text("#agnes-new-token-value")
            assert token.startswith("agnes_pat_")
            curl_text = page.inner_text("#agnes-token-curl")
            assert curl_text == (
                f'curl -H "Authorization: Bearer {token}" {server.url}agnes/api/me'
            )
            assert page.inner_text("#agnes-tokens tbody .agnes-token-name") == "laptop <script>"
            shot(page, "tokens")

            code, me = curl_me(server.url + "agnes/api/me", token)
            assert code == 200 and me["email"] == VIEWER and me["scopes"] == ["data"]

            # a refusal shows the API's message: a lifetime past AGNES_PAT_MAX_DAYS
            page.fill("#agnes-token-name", "too long")
            page.fill("#agnes-token-days", "10000")
            page.click("#agnes-token-create")
            page.wait_for_selector("#agnes-tokens-error:not([hidden])")
            assert "365" in page.inner_text("#agnes-tokens-error")
            assert page.locator("#agnes-tokens tbody tr").count() == 1

            # revoking asks first: dismissing keeps the token working
            page.once("dialog", lambda d: d.dismiss())
            page.click(".agnes-token-revoke")
            assert curl_me(server.url + "agnes/api/me", token)[0] == 200
            page.once("dialog", lambda d: d.accept())
            page.click(".agnes-token-revoke")
            page.wait_for_selector(".agnes-token-status:text-is('revoked')")
            code, body = curl_me(server.url + "agnes/api/me", token)
            assert code == 401 and body["message"] == "Token revoked"
            page.reload()
            assert page.inner_text(".agnes-token-status") == "revoked"

            # XSRF: the same POST without the header is refused
            status = page.evaluate(
                """(url) => fetch(url, {method: 'POST', credentials: 'same-origin',
                     headers: {'Content-Type': 'application/json'},
                     body: JSON.stringify({name: 'no xsrf'})}).then(r => r.status)""",
                server.url + "agnes/api/tokens",
            )
            assert status == 403

            page.click("#agnes-nav-access")
            page.wait_for_url(server.url + "agnes/access")
            assert page.inner_text(".agnes-access-table") == "orders"
            page.click(".agnes-access-table")
            assert page.url.endswith("#table-orders")
            assert page.is_visible("#table-orders")
            assert page.inner_text("#agnes-access-lab").startswith("JupyterLab access: no")
            page.evaluate("window.scrollTo(0, 0)")
            shot(page, "access")
        finally:
            browser.close()


def test_labs_agnes_menu_opens_the_pages(server: Any) -> None:
    from playwright.sync_api import sync_playwright

    link = cli(server.data_dir, "login-link", "--email", ANALYST)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(user_agent=DESKTOP_UA, viewport={"width": 1400, "height": 900})
            page.set_default_timeout(90_000)
            page.goto(link, wait_until="load")
            page.wait_for_selector("#jp-main-dock-panel")
            page.click(".lm-MenuBar-itemLabel:text-is('Agnes')")
            items = page.eval_on_selector_all(
                ".lm-Menu-itemLabel", "els => els.map(e => e.textContent)"
            )
            assert items == ["Dashboards", "Tokens", "My access"], items
            shot(page, "lab-agnes-menu")
            with page.context.expect_page() as opened:
                page.click(".lm-Menu-itemLabel:text-is('Tokens')")
            tokens = opened.value
            tokens.wait_for_load_state("load")
            assert tokens.url == server.url + "agnes/tokens"
            assert tokens.is_visible("#agnes-token-form")
            # an analyst may give a token Lab's scope
            assert tokens.is_visible("#agnes-scope-lab")
        finally:
            browser.close()
