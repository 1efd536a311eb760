"""Session replay, end to end: does the masking keep notebook contents out of PostHog?

A real `jupyter agnes serve` with PostHog on, a notebook holding distinctive secrets in
its code, markdown and saved outputs, JupyterLab in headless Chromium, and a fake PostHog
that turns recording on with a deliberately permissive project config (network bodies
and headers, console logs, inputs unmasked). The page is served under a non-loopback
host name, because posthog-js never records network payloads on localhost/127.0.0.1.

The test fails when recording never starts, when the recording does not show the
notebook at all, or when any secret appears anywhere in what the fake received.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fakes.posthog_server import FakePostHog
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP_UA
from tests.support.server_process import agnes_cli, agnes_server

HOST = "agnes-replay.test"  # mapped to 127.0.0.1 inside Chromium only
SECRET_CELL = "SECRET_CELL_7c1e"
SECRET_OUTPUT = "SECRET_OUTPUT_9d2f"
SECRET_HTML = "SECRET_HTML_41bd"
SECRET_MD = "SECRET_MD_3a7b"
SECRET_TYPED = "SECRET_TYPED_5e3a"
SECRET_FILTER = "SECRET_FILTER_8c0d"
SECRETS = (SECRET_CELL, SECRET_OUTPUT, SECRET_HTML, SECRET_MD, SECRET_TYPED, SECRET_FILTER)

# A project whose owner switched on everything: the snippet's own options must win.
PERMISSIVE_PROJECT: dict[str, Any] = {
    "consoleLogRecordingEnabled": True,
    "networkPayloadCapture": {"recordBody": True, "recordHeaders": True,
                              "capturePerformance": True},
    "masking": {"maskAllInputs": False},
}


def notebook() -> dict[str, Any]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        },
        "cells": [
            {"id": "md1", "cell_type": "markdown", "metadata": {},
             "source": f"## Notes {SECRET_MD}\n"},
            {"id": "code1", "cell_type": "code", "metadata": {}, "execution_count": 1,
             "source": f'secret = "{SECRET_CELL}"\nsecret',
             "outputs": [
                 {"output_type": "stream", "name": "stdout", "text": f"{SECRET_OUTPUT}\n"},
                 {"output_type": "execute_result", "execution_count": 1, "metadata": {},
                  "data": {"text/plain": f"'{SECRET_HTML}'",
                           "text/html": f"<table><tr><td>{SECRET_HTML}</td></tr></table>"}},
             ]},
        ],
    }


# --- rrweb helpers -------------------------------------------------------------------------


def rrweb_nodes(snapshots: list[dict[str, Any]]) -> dict[int, tuple[dict[str, Any], int | None]]:
    """node id -> (node, parent id) over the full snapshots and every mutation's adds."""
    nodes: dict[int, tuple[dict[str, Any], int | None]] = {}

    def walk(node: dict[str, Any], parent: int | None) -> None:
        if isinstance(node.get("id"), int):
            nodes[node["id"]] = (node, parent)
        for child in node.get("childNodes") or []:
            walk(child, node.get("id"))

    for event in snapshots:
        data = event.get("data") or {}
        if event.get("type") == 2 and isinstance(data.get("node"), dict):
            walk(data["node"], None)
        elif event.get("type") == 3 and data.get("source") == 0:
            for add in data.get("adds") or []:
                if isinstance(add, dict) and isinstance(add.get("node"), dict):
                    walk(add["node"], add.get("parentId"))
    return nodes


def texts_under(nodes: dict[int, tuple[dict[str, Any], int | None]], css_class: str) -> list[str]:
    """Text recorded (full snapshot or added later) inside an element with `css_class`."""
    found = []
    for node, parent in nodes.values():
        if node.get("type") != 3 or not (node.get("textContent") or "").strip():
            continue
        seen = 0
        while parent is not None and parent in nodes and seen < 200:
            element, parent = nodes[parent]
            seen += 1
            classes = str((element.get("attributes") or {}).get("class", "")).split()
            if css_class in classes:
                found.append(node["textContent"])
                break
    return found


def input_events(snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """rrweb input events (incremental source 5): {id, text, isChecked}."""
    return [
        e["data"]
        for e in snapshots
        if e.get("type") == 3 and isinstance(e.get("data"), dict) and e["data"].get("source") == 5
    ]


def input_values(snapshots: list[dict[str, Any]]) -> list[str]:
    return [str(d.get("text", "")) for d in input_events(snapshots)]


def describe(nodes: dict[int, tuple[dict[str, Any], int | None]], node_id: Any) -> str:
    """`tag.class < tag.class < ...` for a node id, for failure messages."""
    out, seen = [], 0
    current: Any = node_id
    while current in nodes and seen < 8:
        node, current = nodes[current]
        attrs = node.get("attributes") or {}
        out.append(f"{node.get('tagName', '#')}.{attrs.get('class', '')}"
                   f"[type={attrs.get('type', '')}]")
        seen += 1
    return " < ".join(out) or f"node {node_id}"


def masked(text: str) -> bool:
    return bool(text.strip()) and re.fullmatch(r"[*\s]+", text) is not None


# --- unit checks on the fake's decoding ---------------------------------------------------


# --- the browser session (run once, checked by the tests below) -------------------------


@dataclass
class Session:
    ph: FakePostHog
    snaps: list[dict[str, Any]]
    received: str  # everything the fake got, decoded

    def leaks(self, secrets: tuple[str, ...]) -> dict[str, list[str]]:
        low = self.received.lower()
        return {s: _context(self.received, s) for s in secrets if s.lower() in low}


def _context(text: str, secret: str) -> list[str]:
    lowered = text.lower()
    out, start = [], 0
    while (i := lowered.find(secret.lower(), start)) >= 0 and len(out) < 5:
        out.append(text[max(0, i - 200): i + 60])
        start = i + 1
    return out


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    tmp = tmp_path_factory.mktemp("replay")
    data_dir, root = tmp / "data", tmp / "root"
    root.mkdir()
    (root / "secret.ipynb").write_text(json.dumps(notebook()))
    with FakePostHog(serve_js=True, recording=PERMISSIVE_PROJECT) as ph:
        env = {"POSTHOG_API_KEY": "phc_replay", "POSTHOG_HOST": ph.url,
               "POSTHOG_ENVIRONMENT": "replay-test", "POSTHOG_IDENTIFY_PII": "id",
               "POSTHOG_REPLAY": "1"}
        extra = ["--ServerApp.local_hostnames=localhost",
                 f"--ServerApp.local_hostnames={HOST}"]
        with agnes_server(data_dir, *extra, env=env, root_dir=root) as server:
            base = server.url.replace("127.0.0.1", HOST)
            agnes_cli("bootstrap", "--email", "replay@example.com", "--data-dir",
                      str(data_dir), env=env)
            link = agnes_cli("login-link", "--email", "replay@example.com", "--data-dir",
                             str(data_dir), "--url", base, env=env).stdout.strip()
            snaps = _browse(ph, link, base)
        yield Session(ph, snaps, ph.everything())


def _browse(ph: FakePostHog, link: str, base: str) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_page(user_agent=DESKTOP_UA, viewport={"width": 1400, "height": 900})
            page.goto(link, wait_until="load")
            page.goto(base + "lab/tree/secret.ipynb", wait_until="load")
            page.wait_for_function("() => window.posthog && window.posthog.__loaded", timeout=30000)
            # The notebook really is on screen: otherwise "no secret recorded" proves nothing.
            page.wait_for_selector(".jp-OutputArea-output", timeout=60000)
            page.wait_for_function(
                f"() => document.body.innerText.includes({json.dumps(SECRET_OUTPUT)})",
                timeout=30000,
            )
            page.wait_for_function("() => window.posthog.sessionRecordingStarted()",
                                   timeout=30000)
            # Type a secret into the code cell's editor.
            page.locator(".jp-CodeCell .cm-content").first.click()
            page.keyboard.press("Control+End")
            page.keyboard.type(f"  # {SECRET_TYPED}", delay=20)
            # And into an input: the file browser filter if Lab shows one, else the palette.
            box = page.locator(".jp-FileBrowser-filterBox input")
            if box.count() == 0 or not box.first.is_visible():
                box = _open_palette(page)
            box.first.click()
            box.first.type(SECRET_FILTER, delay=20)
            assert box.first.input_value() == SECRET_FILTER
            return ph.wait_for_snapshots(
                # (the command palette is blocked, so its input is never recorded at all)
                lambda s: any(e.get("type") == 2 for e in s)
                and any(masked(t) for t in texts_under(rrweb_nodes(s), "jp-OutputArea")),
                timeout=60,
            )
        finally:
            browser.close()


def _open_palette(page: Any) -> Any:
    """The command palette's search input (Ctrl+Shift+C can be lost while Lab is busy)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = page.locator(".lm-CommandPalette-input")
    for _ in range(5):
        page.keyboard.press("Escape")
        page.keyboard.press("Control+Shift+C")
        try:
            box.first.wait_for(state="visible", timeout=3000)
            return box
        except PlaywrightTimeout:  # try again
            continue
    raise AssertionError("the command palette did not open")


def test_replay_records_and_masks_notebook(session: Session) -> None:
    snaps = session.snaps
    nodes = rrweb_nodes(snaps)
    all_text = [n["textContent"] for n, _ in nodes.values() if n.get("type") == 3]
    # Recording captured the page: ordinary UI text is there unmasked.
    assert any("Kernel" in t for t in all_text), "the recording holds no Lab UI text"
    # The notebook's code and outputs are there, masked.
    code = texts_under(nodes, "cm-content")
    outputs = texts_under(nodes, "jp-OutputArea")
    assert code and all(masked(t) for t in code), code[:20]
    assert outputs and all(masked(t) for t in outputs), outputs[:20]
    assert any(len(t.strip()) == len(SECRET_OUTPUT) for t in outputs), outputs[:20]
    # rrweb records `.value = ...` even on a detached input (id -1) and does not mask it;
    # jQuery (bundled by @jupyter-widgets) probes `input.value = "t"` at load. Allow only that.
    unmasked = [(d.get("text"), describe(nodes, d.get("id"))) for d in input_events(snaps)
                if d.get("text") and not masked(str(d["text"]))
                and not (d.get("id") == -1 and d.get("text") == "t")]
    assert unmasked == [], unmasked
    # The permissive project turned network capture on (we are not on localhost), so the
    # snippet's recordBody/recordHeaders=false is what keeps the notebook JSON out.
    network = [e for e in snaps if e.get("type") == 6
               and "network" in str((e.get("data") or {}).get("plugin", ""))]
    assert network, "network capture never ran: the body check below proves nothing"
    assert "/api/contents/secret.ipynb" in json.dumps(network)
    assert not session.ph.errors, session.ph.errors


def test_code_outputs_and_typing_never_reach_posthog(session: Session) -> None:
    secrets = (SECRET_CELL, SECRET_OUTPUT, SECRET_HTML, SECRET_TYPED)
    assert session.leaks(secrets) == {}, "secrets reached PostHog"


def test_markdown_and_palette_never_reach_posthog(session: Session) -> None:
    # Markdown headings put their text into attributes (ids, anchor links) and the Table of
    # Contents; the command palette echoes queries. Those areas are blocked, not just masked.
    assert session.leaks((SECRET_MD, SECRET_FILTER)) == {}, "secrets reached PostHog"
