"""PostHog in a real jupyter-server running Agnes: handler exceptions, the snippet, outages."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jupyter_agnes.observability.posthog_client import ObservabilitySettings
from server_extension.html_snippet import SnippetTransforms
from tests.fakes.posthog_server import FakePostHog
from tests.support.apihelpers import bearer


@pytest.fixture
def ph() -> Iterator[FakePostHog]:
    with FakePostHog() as fake:
        yield fake


@pytest.fixture
def agnes_extra_config(ph: FakePostHog) -> dict[str, Any]:
    """PostHog configured the way an operator does: the server builds its own client."""
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_agnes": True, "jupyterlab": True, "voila": True}
        },
        "ObservabilitySettings": {
            "api_key": "phc_server", "host": ph.url, "environment": "test-env",
            "debug_routes": True,
        },
    }


@pytest.fixture
def posthog_on(jp_serverapp: Any, agnes: Any) -> Iterator[ObservabilitySettings]:
    """The running server's PostHog settings; its client is shut down afterwards."""
    observer = agnes.services.observability
    assert observer.enabled
    assert any(isinstance(t, SnippetTransforms) for t in jp_serverapp.web_app.transforms)
    yield observer.settings
    observer.shutdown()


async def fetch(jp_fetch: Any, *parts: str, headers: dict[str, str] | None = None, **kw: Any):
    return await jp_fetch(
        *parts, headers=headers or {}, raise_error=False, follow_redirects=False, **kw
    )


def exceptions(ph: FakePostHog, agnes: Any, n: int = 1) -> list[dict[str, Any]]:
    agnes.services.observability.flush()
    ph.wait_for_events(lambda evs: sum(e["event"] == "$exception" for e in evs) >= n)
    return ph.named("$exception")


async def test_agnes_handler_exception_is_captured(
    jp_fetch: Any, agnes: Any, ph: FakePostHog, posthog_on: ObservabilitySettings
) -> None:
    token = agnes.pat("crash@example.com")
    resp = await fetch(
        jp_fetch, "agnes", "api", "debug", "throw",
        params={"kind": "ZeroDivisionError", "msg": "kaboom", "token": "never-sent"},
        headers=bearer(token),
    )
    assert resp.code == 500
    body = resp.body.decode()
    assert "Traceback" not in body and "kaboom" not in body and 'File "' not in body
    [event] = exceptions(ph, agnes)
    props = event["properties"]
    assert props["component"] == "server"
    assert props["status"] == 500 and props["method"] == "GET"
    assert props["path"].endswith("/agnes/api/debug/throw")
    assert "never-sent" not in json.dumps(event)  # the query string is never sent
    assert props["email"] == "crash@example.com"  # identify mode `email`
    assert event["distinct_id"] == props["user_id"]
    assert props["environment"] == "test-env"
    assert props["$exception_list"][0]["type"] == "ZeroDivisionError"


async def test_core_handler_exception_is_captured(
    jp_fetch: Any, jp_serverapp: Any, agnes: Any, ph: FakePostHog,
    posthog_on: ObservabilitySettings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = agnes.pat("core@example.com", admin=True)

    def broken(*a: Any, **k: Any) -> Any:
        raise RuntimeError("contents manager exploded")

    monkeypatch.setattr(jp_serverapp.contents_manager, "get", broken)
    resp = await fetch(jp_fetch, "api", "contents", "x.ipynb", headers=bearer(token))
    assert resp.code == 500
    assert b"Traceback" not in resp.body
    [event] = exceptions(ph, agnes)
    assert event["properties"]["handler"] == "ContentsHandler"
    assert event["properties"]["component"] == "server"
    assert event["properties"]["$exception_list"][0]["type"] == "RuntimeError"


async def test_http_errors_are_not_captured(
    jp_fetch: Any, agnes: Any, ph: FakePostHog, posthog_on: ObservabilitySettings
) -> None:
    token = agnes.pat("fine@example.com", admin=True)
    resp = await fetch(jp_fetch, "api", "contents", "missing.ipynb", headers=bearer(token))
    assert resp.code == 404
    resp = await fetch(jp_fetch, "agnes", "api", "debug", "throw", params={"kind": "os.system"},
                       headers=bearer(token))
    assert resp.code == 400
    # A marker event proves the queue was delivered, and nothing else came with it.
    agnes.services.observability.capture("marker")
    agnes.services.observability.flush()
    ph.wait_for_events(lambda evs: any(e["event"] == "marker" for e in evs))
    assert ph.named("$exception") == []


async def test_debug_route_authenticates_then_404s_unless_enabled(
    jp_fetch: Any, agnes: Any, ph: FakePostHog, posthog_on: ObservabilitySettings
) -> None:
    resp = await fetch(jp_fetch, "agnes", "api", "debug", "throw")
    assert resp.code == 401
    posthog_on.debug_routes = False
    token = agnes.pat("dbg@example.com")
    resp = await fetch(jp_fetch, "agnes", "api", "debug", "throw", headers=bearer(token))
    assert resp.code == 404


async def test_blackholed_posthog_does_not_slow_requests(
    jp_fetch: Any, agnes: Any, ph: FakePostHog, posthog_on: ObservabilitySettings
) -> None:
    ph.blackhole = True
    token = agnes.pat("slow@example.com")
    t0 = time.monotonic()
    for _ in range(20):
        resp = await fetch(jp_fetch, "agnes", "api", "debug", "throw", headers=bearer(token))
        assert resp.code == 500
    # Each capture only queues; the upload hangs on its own thread.
    assert time.monotonic() - t0 < 10.0
    ph.release.set()


async def test_snippet_on_lab_and_login_not_on_files(
    jp_fetch: Any, jp_root_dir: Any, agnes: Any, ph: FakePostHog,
    posthog_on: ObservabilitySettings,
) -> None:
    (jp_root_dir / "report.html").write_text("<html><head></head><body>data</body></html>")
    value = agnes.session_cookie("lab@example.com", admin=True)
    cookie = {"Cookie": f"agnes_session={value}", "Accept-Encoding": "gzip"}
    lab = await fetch(jp_fetch, "lab", headers=cookie)
    assert lab.code == 302  # to the user's own workspace (test_lab_isolation)
    workspace = lab.headers["Location"].split("/lab/", 1)[1]
    lab = await fetch(jp_fetch, "lab", *workspace.split("/"), headers=cookie)
    assert lab.code == 200
    html = lab.body.decode()
    assert html.count('id="agnes-posthog-config"') == 1
    assert html.index('id="agnes-posthog-config"') < html.lower().index("</head>")
    assert '"email":"lab@example.com"' in html
    login = await fetch(jp_fetch, "agnes", "login")
    assert b'id="agnes-posthog-config"' in login.body
    assert b'"identify":null' in login.body
    # A PAT: cookie requests to /files/ also need a same-origin Referer.
    token = agnes.pat("files@example.com", admin=True)
    files = await fetch(jp_fetch, "files", "report.html", headers=bearer(token))
    assert files.code == 200, (files.code, files.body, files.headers)
    assert files.body == b"<html><head></head><body>data</body></html>"
    api = await fetch(jp_fetch, "agnes", "api", "me", headers=cookie)
    assert b"posthog" not in api.body


NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {},
         "outputs": [], "source": "from IPython.display import HTML\nHTML('<b>hello from voila</b>')"},
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


async def test_snippet_on_voila_render(
    jp_fetch: Any, jp_root_dir: Any, agnes: Any, ph: FakePostHog,
    posthog_on: ObservabilitySettings,
) -> None:
    (jp_root_dir / "dash.ipynb").write_text(json.dumps(NOTEBOOK))
    token = agnes.pat("viewer@example.com", admin=True)
    resp = await fetch(
        jp_fetch, "voila", "render", "dash.ipynb", headers=bearer(token), request_timeout=120
    )
    assert resp.code == 200, resp.body[:500]
    html = resp.body.decode()
    assert "jp-Notebook-cell" in html  # the rendered dashboard came through whole
    assert html.rstrip().endswith("</html>")
    assert html.count('id="agnes-posthog-config"') == 1
    assert html.index('id="agnes-posthog-config"') < html.lower().index("</head>")
    assert '"email":"viewer@example.com"' in html
