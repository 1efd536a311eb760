"""An admin reads the audit log in headless Chromium against a real `jupyter agnes serve`:
filters it by action with the form (found by its labels), sees the matching rows only,
pages on with the next link and exports the same filter as CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import requests

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP_UA, shot
from tests.support.server_process import agnes_cli, agnes_server


def test_admin_filters_the_audit_page_by_action(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    data_dir = tmp_path / "data"
    root = tmp_path / "root"
    root.mkdir()
    cli_dir = ("--data-dir", str(data_dir))
    agnes_cli("bootstrap", "--email", "admin@example.com", *cli_dir)
    for group in ("analysts", "finance", "ops"):
        agnes_cli("grant", group, "lab", "*", *cli_dir)
    agnes_cli("user", "add", "ann@example.com", *cli_dir)
    with agnes_server(data_dir, root_dir=root) as server:
        link = agnes_cli("login-link", "--email", "admin@example.com", *cli_dir).stdout.strip()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(user_agent=DESKTOP_UA, viewport={"width": 1280,
                                                                          "height": 900})
                page.goto(link, wait_until="load")
                page.goto(server.url + "agnes/admin/audit", wait_until="load")
                assert page.locator("tr.audit-row").count() >= 5
                page.get_by_label("Action starts with").fill("grant.")
                page.get_by_label("Per page").select_option("50")
                page.keyboard.press("Enter")  # the form submits without JavaScript
                page.wait_for_url("**/agnes/admin/audit?*action=grant.*")
                actions = page.locator("tr.audit-row .audit-action").all_inner_texts()
                assert actions == ["grant.add"] * 3
                assert page.get_by_label("Action starts with").input_value() == "grant."
                shot(page, "admin-audit")
                # one row per page: the next link walks the same filter
                page.goto(server.url + "agnes/admin/audit?action=grant.&limit=1")
                page.click("#audit-next")
                page.wait_for_load_state("load")
                assert page.locator("tr.audit-row .audit-action").all_inner_texts() == [
                    "grant.add"]
                assert page.locator("#audit-newest").is_visible()
                href = page.locator("#audit-export").get_attribute("href")
                cookies = {c["name"]: c["value"] for c in page.context.cookies()}
            finally:
                browser.close()
        export = requests.get(server.url.rstrip("/") + href, cookies=cookies, timeout=30)
        assert export.status_code == 200
        rows = list(csv.DictReader(io.StringIO(export.text)))
        assert [r["action"] for r in rows] == ["grant.add"] * 3
