"""The first hour with `make run`, in headless Chromium (issue 18).

The server is `jupyter agnes quickstart` from `make run`'s own environment (.venv-run), so
only runtime dependencies can make it pass; people are added with that environment's CLI,
as the banner tells an operator to. A fake LLM answers notebook 02; PostHog is off.
Screenshots of failures go to tests/browser/artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.fakes.llm_server import REGION_REVENUE_SQL, FakeLLMServer
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP_UA, shot
from tests.support.lab_driver import (
    ACTIVE_NOTEBOOK,
    open_notebook,
    run_notebook,
)
from tests.support.run_env import Quickstart, quickstart, require_run_env, run_cli

ANALYST_A, ANALYST_B = "ana@example.com", "ben@example.com"
VIEWER = "vic@example.com"
NOTEBOOK_01, NOTEBOOK_02 = "01-getting-started.ipynb", "02-ask-agnes.ipynb"
KPI = ".agnes-kpi-revenue .agnes-kpi-value"

SESSIONS_JS = "() => fetch('/api/sessions').then(async r => ({status: r.status, body: await r.json()}))"
STATUS_JS = "(url) => fetch(url).then(r => r.status)"


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(sql=REGION_REVENUE_SQL) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llm: FakeLLMServer) -> Iterator[Quickstart]:
    require_run_env()
    data_dir = tmp_path_factory.mktemp("first-hour") / "data"
    # quickstart's own sample data step, smaller (it keeps data it finds): the default million
    # rows would only slow the notebooks down.
    run_cli("sample-data", "--rows", "20000", "--data-dir", str(data_dir))
    env = {
        "AGNES_LLM_PROVIDER": "anthropic",
        "ANTHROPIC_BASE_URL": llm.url,
        "ANTHROPIC_API_KEY": "sk-ant-fake-first-hour",
        "POSTHOG_API_KEY": "",
        # Lab keeps settings under ~/.jupyter unless told otherwise (Agnes keeps its
        # workspaces in the data dir itself).
        "JUPYTERLAB_SETTINGS_DIR": str(data_dir.parent / "lab-settings"),
    }
    with quickstart(data_dir, env) as qs:
        for email in (ANALYST_A, ANALYST_B):
            qs.cli("user", "add", email)
            qs.cli("group", "add-member", "analysts", email)
        qs.cli("grant", "analysts", "lab", "*")
        yield qs


@pytest.fixture
def browser() -> Iterator[Any]:
    """Chromium for one test: Playwright's sync API runs its own event loop, which must be
    gone before pytest-jupyter's autouse loop fixture closes the loop after each test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def signed_in_page(browser: Any, server: Quickstart, email: str) -> Any:
    """A new browser context (its own cookies) that opened `email`'s login link from the CLI."""
    link = server.cli("login-link", "--email", email).strip()
    assert link.startswith(server.url + "agnes/auth/link?code="), link  # server.json's URL
    context = browser.new_context(user_agent=DESKTOP_UA, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.goto(link, wait_until="load")
    return page


def lab_page(browser: Any, server: Quickstart, email: str) -> Any:
    """`email` signed in with a login link, in JupyterLab (their own workspace)."""
    page = signed_in_page(browser, server, email)
    page.wait_for_selector("#jp-main-dock-panel")
    assert "/lab/workspaces/" in page.url, page.url
    return page


def running_panel_text(page: Any, settle_ms: int = 2_000) -> str:
    """What Lab's Running Terminals and Kernels panel shows (open tabs, kernels, workspaces)."""
    panel = "#jp-running-sessions"
    if not page.locator(panel).is_visible():  # the sidebar tab toggles it
        page.click(".jp-SideBar .lm-TabBar-tab[data-id='jp-running-sessions']")
    page.wait_for_selector(f"{panel} .jp-RunningSessions-section", state="visible")
    page.wait_for_timeout(settle_ms)  # its lists come from polled requests
    return page.inner_text(panel)


def test_the_banner_signs_the_admin_in_with_its_pat(server: Quickstart) -> None:
    me = requests.get(
        server.url + "agnes/api/me",
        headers={"Authorization": f"Bearer {server.admin_pat}"},
        timeout=30,
    )
    assert me.status_code == 200 and me.json()["is_admin"], me.text
    assert server.login_link.startswith(server.url + "agnes/auth/link?code=")


def test_run_all_on_notebooks_01_and_02_shows_no_error(
    browser: Any, server: Quickstart, llm: FakeLLMServer
) -> None:
    page = lab_page(browser, server, ANALYST_A)

    first = run_notebook(page, server.url, NOTEBOOK_01, server.log)
    assert first["errors"] == [], first
    # %%sql tables and the matplotlib chart render inline in Lab, from runtime deps alone
    assert page.locator(f"{ACTIVE_NOTEBOOK} table.agnes-sql-result").count() >= 3
    assert page.locator(f"{ACTIVE_NOTEBOOK} .jp-RenderedImage img").count() == 1
    shot(page, "first-hour-01")

    second = run_notebook(page, server.url, NOTEBOOK_02, server.log)
    assert second["errors"] == [], second
    assert llm.requests, "notebook 02's kernel never reached the (fake) LLM"
    assert page.locator(f"{ACTIVE_NOTEBOOK} table.agnes-sql-result").count() >= 1
    shot(page, "first-hour-02")


def test_a_second_analyst_sees_none_of_the_first_ones_notebooks_or_sessions(
    browser: Any, server: Quickstart
) -> None:
    # A has notebook 01 open with a running kernel (the one the test above ran, if it ran).
    a_page = lab_page(browser, server, ANALYST_A)
    open_notebook(a_page, server.url, NOTEBOOK_01, server.log)
    a_sessions = a_page.evaluate(SESSIONS_JS)["body"]
    a_ids = {s["id"] for s in a_sessions}
    a_kernels = {s["kernel"]["id"] for s in a_sessions}
    a_workspace = urlsplit(a_page.url).path.split("/lab/workspaces/")[1].split("/")[0]
    # The panel names each notebook's kernel as "<notebook> (<kernel id prefix>)".
    a_kernel_labels = {f"{NOTEBOOK_01} ({s['kernel']['id'][:8]})" for s in a_sessions
                       if s["path"].endswith(NOTEBOOK_01)}
    assert a_kernel_labels & set(running_panel_text(a_page).splitlines()), a_kernel_labels
    admin_view = requests.get(
        server.url + "api/sessions",
        headers={"Authorization": f"Bearer {server.admin_pat}"},
        timeout=30,
    ).json()
    assert a_ids <= {s["id"] for s in admin_view}, admin_view  # the checks below can fail

    b_page = lab_page(browser, server, ANALYST_B)
    # Lab opens its Launcher only when the restored workspace has no documents.
    b_page.wait_for_selector("#jp-main-dock-panel .jp-Launcher", timeout=120_000)
    assert f"/lab/workspaces/{a_workspace}" not in b_page.url, b_page.url
    tabs = b_page.locator("#jp-main-dock-panel .lm-TabBar-tab").all_inner_texts()
    assert not [t for t in tabs if ".ipynb" in t], tabs
    running = running_panel_text(b_page)
    shot(b_page, "first-hour-second-analyst")
    assert NOTEBOOK_01 not in running and NOTEBOOK_02 not in running, running

    b_sessions = b_page.evaluate(SESSIONS_JS)
    assert b_sessions == {"status": 200, "body": []}, b_sessions
    b_kernels = b_page.evaluate("() => fetch('/api/kernels').then(r => r.json())")
    assert not a_kernels & {k["id"] for k in b_kernels}, b_kernels
    for session_id in a_ids:
        status = b_page.evaluate(STATUS_JS, f"/api/sessions/{session_id}")
        assert status in (403, 404), status
    assert b_page.evaluate(STATUS_JS, f"/lab/api/workspaces/{a_workspace}") == 403


def test_a_second_analyst_is_not_shown_the_first_ones_workspace(
    browser: Any, server: Quickstart
) -> None:
    a_page = lab_page(browser, server, ANALYST_A)  # Lab saves A's layout as it loads
    a_workspace = urlsplit(a_page.url).path.split("/lab/workspaces/")[1].split("/")[0]

    b_page = lab_page(browser, server, ANALYST_B)
    listed = b_page.evaluate("() => fetch('/lab/api/workspaces').then(r => r.json())")
    assert a_workspace not in listed["workspaces"]["ids"], listed["workspaces"]["ids"]
    assert NOTEBOOK_01 not in json.dumps(listed["workspaces"]["values"])  # A's open tabs
    running = running_panel_text(b_page)
    assert a_workspace not in running.split(), running
    # Kept in the data dir: user ids (and so workspace names) are only unique there.
    saved = [p.name for p in (server.data_dir / "lab" / "workspaces").iterdir()]
    assert any(name.startswith(f"{a_workspace}-") for name in saved), saved


def test_a_viewers_login_link_lands_on_their_dashboards(browser: Any, server: Quickstart) -> None:
    server.cli("user", "add", VIEWER)
    server.cli("group", "add-member", "viewers", VIEWER)
    server.cli("grant", "viewers", "dashboard", "sales")

    page = signed_in_page(browser, server, VIEWER)
    try:
        assert urlsplit(page.url).path == "/agnes/dashboards", page.url
        links = page.locator("a.agnes-dashboard-link")
        assert links.all_inner_texts() == ["Sales dashboard"]
        links.first.click()
        page.wait_for_selector(KPI, state="visible", timeout=180_000)
        shot(page, "first-hour-viewer-dashboard")
    except Exception:
        shot(page, "first-hour-viewer-failed")
        raise
    finally:
        page.context.close()


def test_without_the_run_env_the_test_says_how_to_build_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.support import run_env

    monkeypatch.setattr(run_env, "RUN_VENV", tmp_path / ".venv-run")
    with pytest.raises(pytest.fail.Exception, match=r"make \.venv-run/\.runner-installed"):
        run_env.require_run_env()
