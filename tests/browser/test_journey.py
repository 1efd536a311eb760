"""A new team member's first day, in headless Chromium against a real `jupyter agnes serve`.

Fake Google signs people in, fake PostHog receives the browser's events. Screenshots of each
step go to tests/browser/artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.fakes.google_server import CLIENT_ID, CLIENT_SECRET, FakeGoogle
from tests.fakes.posthog_server import FakePostHog
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP_UA, shot
from tests.support.lab_driver import (
    ERROR_OUTPUT,
    notebook_state,
    run_all_cells,
    wait_for_kernel_idle,
)
from tests.support.server_process import agnes_cli, agnes_server

SIGNED_OUT_URL = re.compile(r".*/agnes/login\?signed_out=1$")  # where sign-out lands

REPO = Path(__file__).resolve().parents[2]
ANALYSTS, VIEWERS = "agnes-analysts@example.com", "agnes-viewers@example.com"
KPI = ".agnes-kpi-revenue .agnes-kpi-value"
# Text that only appears inside notebook cells: it must never reach PostHog.
CELL_SECRETS = ("date_trunc('month'", "revenue_by_month", "cohort")


@pytest.fixture
def world(tmp_path: Path):
    data_dir, root = tmp_path / "data", tmp_path / "root"
    shutil.copytree(REPO / "notebooks", root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    agnes_cli("sample-data", "--rows", "20000", "--data-dir", str(data_dir))
    # The first admin makes the store (deploy.md's order): grants need one to exist.
    agnes_cli("bootstrap", "--email", "admin@example.com", "--data-dir", str(data_dir))
    agnes_cli("grant", ANALYSTS, "lab", "*", "--data-dir", str(data_dir))
    # as the README says, by id; no server runs yet, so name the root it will serve
    agnes_cli(
        "grant", VIEWERS, "dashboard", "sales", "--root-dir", str(root), "--data-dir", str(data_dir)
    )
    with FakeGoogle() as google, FakePostHog(serve_js=True) as posthog:
        key_file = tmp_path / "sa.json"
        key_file.write_text(json.dumps(google.service_account_json()))
        os.chmod(key_file, 0o600)
        env = {
            "GOOGLE_CLIENT_ID": CLIENT_ID,
            "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
            "AGNES_GOOGLE_DISCOVERY_URL": google.base_url + "/.well-known/openid-configuration",
            "AGNES_GOOGLE_DIRECTORY_URL": google.base_url + "/admin/directory/v1",
            "GOOGLE_ADMIN_SDK_KEY_FILE": str(key_file),
            "GOOGLE_ADMIN_SDK_SUBJECT": "admin@example.com",
            "AGNES_ALLOWED_DOMAINS": "example.com",
            "AGNES_GOOGLE_GROUP_PREFIX": "agnes-",
            "POSTHOG_API_KEY": "phc_journey",
            "POSTHOG_HOST": posthog.url,
            "POSTHOG_ENVIRONMENT": "e2e",
            "POSTHOG_IDENTIFY_PII": "id",
            "MPLBACKEND": "Agg",
        }
        with agnes_server(data_dir, env=env, root_dir=root) as server:
            yield server, google, posthog


def sign_in_with_google(page, url: str) -> None:
    page.goto(url, wait_until="load")
    assert "/agnes/login" in page.url
    shot(page, "01-login")
    page.click("#google-login")
    page.wait_for_load_state("load")


def test_new_team_member_journey(world) -> None:
    from playwright.sync_api import sync_playwright

    server, google, posthog = world
    google.set_user("analyst@example.com", groups=[ANALYSTS], name="Ana Lyst")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(user_agent=DESKTOP_UA, viewport={"width": 1400, "height": 900})
            page.set_default_timeout(90_000)

            # 1. /lab → login page → Google → back in Lab
            sign_in_with_google(page, server.url + "lab")
            page.wait_for_selector("#jp-main-dock-panel")
            assert page.url.startswith(server.url + "lab")
            me = page.evaluate("() => fetch('/agnes/api/me').then(r => r.json())")
            assert me["email"] == "analyst@example.com" and not me["is_admin"]
            shot(page, "02-lab")

            # 2. run 01-getting-started with the agnes kernel; a %%sql table renders
            page.goto(server.url + "lab/tree/01-getting-started.ipynb", wait_until="load")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            try:
                wait_for_kernel_idle(page, "01-getting-started.ipynb")
                run_all_cells(page)
                # An error output aborts the rest of "Run All": stop waiting at once then.
                first = page.wait_for_selector(
                    f".jp-OutputArea-output table.agnes-sql-result, {ERROR_OUTPUT}",
                    timeout=180_000,
                )
                table = page.wait_for_selector(".jp-OutputArea-output table.agnes-sql-result",
                                               timeout=1_000)
            except Exception as exc:
                shot(page, "03-notebook-failed")
                raise AssertionError(
                    f"no %%sql table rendered; page shows: {notebook_state(page)}\n"
                    f"server log tail:\n{server.log()[-4000:]}"
                ) from exc
            assert first is not None and table.is_visible()
            page.wait_for_selector(".jp-OutputArea-output:has-text('showing')")
            page.wait_for_function(
                "() => document.querySelectorAll('.jp-InputPrompt').length > 0 && "
                "![...document.querySelectorAll('.jp-InputPrompt')].some(p => p.innerText.includes('*'))",
                timeout=180_000,
            )
            errors = page.query_selector_all(ERROR_OUTPUT)
            assert errors == [], [e.inner_text()[:300] for e in errors]
            shot(page, "03-notebook")

            # 3. the sales dashboard in Voila; the region filter changes the KPI
            page.goto(server.url + "voila/render/dashboards/sales.ipynb", wait_until="commit")
            page.wait_for_selector(KPI, state="visible", timeout=120_000)
            before = page.inner_text(KPI)
            page.select_option(".agnes-filter-region select", "Europe")
            page.wait_for_function(
                "([sel, old]) => document.querySelector(sel).innerText !== old",
                arg=[KPI, before],
            )
            assert page.inner_text(KPI) != before
            shot(page, "04-dashboard")

            # 4. sign out; a viewer sees only the dashboard and is sent back from /lab
            page.goto(server.url + "logout", wait_until="load")  # JupyterLab's menu: asks
            assert "/logout" in page.url and "/agnes/login" not in page.url
            page.click("#agnes-logout-confirm")
            page.wait_for_url(SIGNED_OUT_URL)
            assert page.inner_text("p.notice") == "You are signed out."
            google.set_user("viewer@example.com", groups=[VIEWERS], name="Vi Ewer")
            sign_in_with_google(page, server.url + "agnes/login")
            assert page.url.startswith(server.url + "agnes/dashboards")
            links = [a.get_attribute("href") for a in page.query_selector_all("a[href*='voila']")]
            assert links == ["/voila/render/dashboards/sales.ipynb"], links
            assert page.inner_text("a.agnes-dashboard-link") == "Sales dashboard"
            shot(page, "05-viewer-dashboards")
            resp = page.goto(server.url + "lab", wait_until="load")
            assert resp is not None and resp.status == 200
            assert page.url.startswith(server.url + "agnes/dashboards")
            shot(page, "06-viewer-lab-redirected")
            # the dashboard's header stays visible once Voila has rendered, and leads back
            page.click("a.agnes-dashboard-link")
            page.wait_for_selector(KPI, state="visible", timeout=120_000)
            assert page.is_visible("#agnes-voila-header")
            shot(page, "06b-viewer-dashboard-header")
            page.click("#agnes-back-to-dashboards")
            page.wait_for_url(re.compile(r".*/agnes/dashboards$"))
            viewer = page.evaluate("() => fetch('/agnes/api/me').then(r => r.json())")
            # the dashboards page signs out with one click (a POST carrying the XSRF token)
            page.goto(server.url + "agnes/dashboards", wait_until="load")
            page.click("#agnes-sign-out")
            page.wait_for_url(SIGNED_OUT_URL)
            gone = page.evaluate("() => fetch('/agnes/api/me').then(r => r.status)")
            assert gone == 401, gone
        finally:
            browser.close()

    # 5. PostHog got pageviews with user ids and the environment, and never cell contents
    events = posthog.wait_for_events(
        lambda evs: {str(me["id"]), str(viewer["id"])}
        <= {e["properties"].get("user_id") for e in evs if e.get("event") == "$pageview"},
        timeout=30,
    )
    views = [e for e in events if e.get("event") == "$pageview"]
    assert all(e["properties"].get("environment") == "e2e" for e in views)
    everything = json.dumps(events)
    for secret in CELL_SECRETS:
        assert secret not in everything, secret
