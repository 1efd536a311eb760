"""The snippet transform on a real tornado server (gzip on and off), and its escaping."""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from collections.abc import Iterator

import httpx
import pytest
import tornado.web
from tornado.httputil import HTTPServerRequest

from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.observability.posthog_client import ObservabilitySettings
from jupyter_agnes.observability.snippet import LOADER_CSP_HASH, LOADER_JS, render_snippet
from server_extension.html_snippet import (
    HOLD_BACK,
    HeadInjector,
    PostHogSnippetTransform,
    path_excluded,
    snippet_enabled,
)
from tests.support.observability_tornado import TornadoThread

BASE = "/a%40b/"
EVIL = "</script><script>alert(1)</script>"
ALICE = Principal(
    user_id=7, email="alice@acme.com", name="Alice", groups=(), is_admin=False, auth="session",
    credential_id="s1",
)
MALLORY = Principal(
    user_id=66, email=f"m{EVIL}@evil.com", name=f"Mallory {EVIL}", groups=(), is_admin=False,
    auth="session", credential_id="s2",
)
USERS = {"alice": ALICE, "mallory": MALLORY}

HEAD = b"<!doctype html><html><head><meta charset='utf-8'><title>t</title></head>"
PAGE = HEAD + b"<body><p>hello</p></body></html>"
RELEASE = threading.Event()


def settings(**kw: object) -> ObservabilitySettings:
    base = {"api_key": "phc_snip", "host": "http://127.0.0.1:9", "identify_pii": "full"}
    return ObservabilitySettings(**{**base, **kw})


def expected(body: bytes, user: Principal | None, s: ObservabilitySettings) -> bytes:
    snippet = render_snippet(s, user).encode()
    idx = body.lower().index(b"</head>")
    return body[:idx] + snippet + body[idx:]


class Base(tornado.web.RequestHandler):
    def prepare(self) -> None:
        # Stands in for the identity provider, which leaves the user on the request.
        self.request.agnes_principal = USERS.get(self.request.headers.get("X-User", ""))


class Page(Base):
    def get(self) -> None:
        self.set_cookie("first", "1")
        self.set_cookie("second", "2")
        self.set_header("X-Custom", "kept")
        self.write(PAGE)


class Stream(Base):
    async def get(self) -> None:
        size = int(self.get_argument("size", "3"))
        body = HEAD + b"<body>" + b"".join(b"<p>%d</p>" % i for i in range(200)) + b"</body>"
        for i in range(0, len(body), size):
            self.write(body[i : i + size])
            await self.flush()


class Slow(Base):
    async def get(self) -> None:
        self.write(HEAD + b"<body><p>first part</p>")
        await self.flush()
        while not RELEASE.is_set():
            await asyncio.sleep(0.02)
        self.write(b"<p>second part</p></body></html>")


class Big(Base):
    async def get(self) -> None:
        filler = b"<p>" + b"x" * 1000 + b"</p>\n"
        body = HEAD + b"<body>" + filler * 10_500 + b"</body></html>"  # ~10.5 MB
        if self.get_argument("stream", ""):
            for i in range(0, len(body), 65536):
                self.write(body[i : i + 65536])
                await self.flush()
        else:
            self.write(body)


class Attachment(Base):
    def get(self) -> None:
        self.set_header("Content-Disposition", 'attachment; filename="x.html"')
        self.write(PAGE)


class Already(Base):
    def get(self) -> None:
        self.write(b"<html><head><script>posthog.init('phc_other')</script></head><body/></html>")


class Json(Base):
    def get(self) -> None:
        self.write({"html": "</head>"})


class ExplicitLength(Base):
    async def get(self) -> None:
        self.set_header("Content-Length", str(len(PAGE)))
        self.write(PAGE[:20])
        await self.flush()
        self.write(PAGE[20:])


class NoHead(Base):
    def get(self) -> None:
        self.write(b"<html><body>no head here</body></html>")


# The settings the test servers' transforms use; a test may swap them mid-way.
ACTIVE: dict[str, ObservabilitySettings | None] = {"settings": None}


def transforms(request: HTTPServerRequest) -> PostHogSnippetTransform:
    return PostHogSnippetTransform(request, ACTIVE["settings"], BASE)


def make_app(compress: bool, twice: bool = False) -> tornado.web.Application:
    routes = [
        ("page", Page), ("stream", Stream), ("slow", Slow), ("big", Big),
        ("attachment", Attachment), ("already", Already), ("json", Json),
        ("length", ExplicitLength), ("nohead", NoHead), ("files/report.html", Page),
        ("voila/files/report.html", Page), ("api/x", Page), ("voila/render/nb.ipynb", Stream),
    ]
    app = tornado.web.Application(
        [(BASE + path, cls) for path, cls in routes], compress_response=compress
    )
    app.transforms.insert(0, transforms)
    if twice:
        app.transforms.insert(0, transforms)
    return app


@pytest.fixture(autouse=True)
def configured() -> Iterator[ObservabilitySettings]:
    s = settings()
    ACTIVE["settings"] = s
    RELEASE.clear()
    yield s
    ACTIVE["settings"] = None
    RELEASE.set()


@pytest.fixture(params=[False, True], ids=["plain", "gzip"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[TornadoThread, bool]]:
    with TornadoThread(make_app(compress=request.param)) as srv:
        yield srv, request.param


def get(srv: TornadoThread, path: str, user: str = "alice", **kw: object) -> httpx.Response:
    headers = {"X-User": user, "Accept-Encoding": "gzip"}
    return httpx.get(srv.url + BASE + path, headers=headers, timeout=60, **kw)


# --- pages that get the snippet -----------------------------------------------------------


def test_page_gets_snippet_and_keeps_headers(
    server: tuple[TornadoThread, bool], configured: ObservabilitySettings
) -> None:
    srv, gz = server
    r = get(srv, "page")
    assert r.status_code == 200
    assert r.content == expected(PAGE, ALICE, configured)
    cookies = sorted(c.split(";")[0] for c in r.headers.get_list("set-cookie"))
    assert cookies == ["first=1", "second=2"]
    assert r.headers["x-custom"] == "kept"
    assert r.headers.get("content-encoding") == ("gzip" if gz else None)
    if not gz:
        assert int(r.headers["content-length"]) == len(r.content)
    assert "etag" not in r.headers


def test_streamed_head_split_across_chunks(
    server: tuple[TornadoThread, bool], configured: ObservabilitySettings
) -> None:
    srv, _ = server
    body = HEAD + b"<body>" + b"".join(b"<p>%d</p>" % i for i in range(200)) + b"</body>"
    for size in (1, 3, 5, 7, 64):
        r = get(srv, f"stream?size={size}")
        assert r.content == expected(body, ALICE, configured), f"chunk size {size}"
    r = get(srv, "voila/render/nb.ipynb?size=2")
    assert r.content == expected(body, ALICE, configured)


def test_streaming_is_not_buffered(server: tuple[TornadoThread, bool]) -> None:
    srv, gz = server
    headers = {"X-User": "alice", "Accept-Encoding": "gzip"}
    with httpx.stream("GET", srv.url + BASE + "slow", headers=headers, timeout=30) as r:
        assert r.headers.get("content-encoding") == ("gzip" if gz else None)
        pieces = r.iter_bytes()
        seen = b""
        for piece in pieces:
            seen += piece
            if b"first part" in seen:
                break
        assert b"agnes-posthog-config" in seen  # snippet arrived before the page ended
        assert b"second part" not in seen
        RELEASE.set()
        rest = b"".join(pieces)
    assert (seen + rest).endswith(b"<p>second part</p></body></html>")


@pytest.mark.parametrize("stream", ["", "1"])
def test_ten_megabyte_page(
    server: tuple[TornadoThread, bool], configured: ObservabilitySettings, stream: str
) -> None:
    srv, _ = server
    filler = b"<p>" + b"x" * 1000 + b"</p>\n"
    body = HEAD + b"<body>" + filler * 10_500 + b"</body></html>"
    r = get(srv, f"big?stream={stream}")
    assert len(r.content) == len(body) + len(render_snippet(configured, ALICE))
    assert r.content == expected(body, ALICE, configured)


def test_explicit_content_length_is_dropped_when_streaming(
    server: tuple[TornadoThread, bool], configured: ObservabilitySettings
) -> None:
    srv, _ = server
    r = get(srv, "length")
    assert r.content == expected(PAGE, ALICE, configured)


def test_anonymous_page_has_no_identify(
    server: tuple[TornadoThread, bool], configured: ObservabilitySettings
) -> None:
    srv, _ = server
    r = get(srv, "page", user="nobody")
    assert r.content == expected(PAGE, None, configured)
    assert b'"identify":null' in r.content


# --- pages left alone -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["attachment", "files/report.html", "voila/files/report.html", "api/x", "json",
             "nohead"]
)
def test_left_alone(server: tuple[TornadoThread, bool], path: str) -> None:
    srv, _ = server
    r = get(srv, path)
    assert r.status_code == 200
    assert b"agnes-posthog-config" not in r.content
    assert b"alert" not in r.content
    if path in ("attachment", "files/report.html", "voila/files/report.html", "api/x"):
        assert r.content == PAGE


def test_page_with_posthog_already_is_untouched(server: tuple[TornadoThread, bool]) -> None:
    srv, _ = server
    r = get(srv, "already")
    assert r.content.count(b"posthog.init") == 1
    assert b"agnes-posthog-config" not in r.content


def test_double_transform_injects_once(configured: ObservabilitySettings) -> None:
    with TornadoThread(make_app(compress=True, twice=True)) as srv:
        r = get(srv, "page")
        assert r.content == expected(PAGE, ALICE, configured)
        r = get(srv, "stream?size=2")
        assert r.content.count(b'id="agnes-posthog-config"') == 1


def test_disabled_settings_do_nothing(server: tuple[TornadoThread, bool]) -> None:
    srv, _ = server
    off = ObservabilitySettings(api_key="")
    assert snippet_enabled(off) is False
    ACTIVE["settings"] = off
    r = get(srv, "page")
    assert r.content == PAGE


# --- escaping -------------------------------------------------------------------------------


def test_escaping_attack(
    server: tuple[TornadoThread, bool], configured: ObservabilitySettings
) -> None:
    srv, _ = server
    r = get(srv, "page", user="mallory")
    html = r.text
    assert "<script>alert(1)" not in html
    assert html.count("</script>") == 2  # only the snippet's own two elements close
    config = re.search(
        r'<script type="application/json" id="agnes-posthog-config">(.*?)</script>', html
    )
    assert config is not None
    data = json.loads(config.group(1))
    # Escaped for HTML, yet the values arrive intact.
    assert data["identify"]["properties"]["name"] == MALLORY.name
    assert data["identify"]["properties"]["email"] == MALLORY.email
    assert data["register"]["email"] == MALLORY.email


def test_hostile_settings_are_escaped() -> None:
    s = settings(replay_mask_selector=f".a, {EVIL}", api_key=f"phc_{EVIL}")
    out = render_snippet(s, MALLORY)
    assert "<script>alert" not in out
    assert out.count("</script>") == 2


def test_loader_is_constant_for_csp() -> None:
    a = render_snippet(settings(), ALICE)
    b = render_snippet(settings(identify_pii="none"), MALLORY)
    assert f"<script>{LOADER_JS}</script>" in a and f"<script>{LOADER_JS}</script>" in b
    assert LOADER_CSP_HASH.startswith("sha256-")


def test_identify_modes_in_snippet() -> None:
    for mode, present, absent in [
        ("none", [], ["alice@acme.com", '"user_id"', '"Alice"']),
        ("id", ['"distinct_id":"7"'], ["alice@acme.com"]),
        ("email", ["alice@acme.com"], ['"name":"Alice"']),
        ("full", ["alice@acme.com", '"name":"Alice"'], []),
    ]:
        out = render_snippet(settings(identify_pii=mode), ALICE)
        for p in present:
            assert p in out, (mode, p)
        for a in absent:
            assert a not in out, (mode, a)


def test_replay_options() -> None:
    on = json.loads(re.search(r">(\{.*?\})</script>", render_snippet(settings(), None)).group(1))
    rec = on["options"]["session_recording"]
    assert rec["maskAllInputs"] is True
    for sel in (".jp-InputArea", ".cm-content", ".jp-OutputArea", ".jp-RenderedHTMLCommon",
                ".jp-DirListing-content", "code", "pre", "[data-sensitive]"):
        assert sel in rec["maskTextSelector"]
    assert on["options"]["capture_pageview"] == "history_change"
    assert on["options"]["person_profiles"] == "identified_only"
    assert on["options"]["autocapture"] is False
    assert on["options"]["capture_pageleave"] is True
    extra = render_snippet(settings(replay_mask_selector=".secret-table"), None)
    assert ".secret-table" in extra
    off = render_snippet(settings(replay=False), None)
    assert '"disable_session_recording":true' in off
    assert "\"session_recording\"" not in off


# --- the injector and the path rules, exhaustively ---------------------------------------


def test_injector_any_split_holds_back_little() -> None:
    snippet = b"<SNIP>"
    doc = b"<html><HEAD><title>x</title></HEAD><body>" + b"y" * 300 + b"</body></html>"
    want = doc.replace(b"</HEAD>", snippet + b"</HEAD>", 1)
    rng = random.Random(7)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(doc)), rng.randint(1, 40)))
        pieces = [doc[i:j] for i, j in zip([0, *cuts], [*cuts, len(doc)], strict=True)]
        inj = HeadInjector(snippet)
        out, fed = b"", 0
        for n, piece in enumerate(pieces):
            out += inj.feed(piece, n == len(pieces) - 1)
            fed += len(piece)
            extra = len(snippet) if inj.injected else 0
            assert len(out) >= fed + extra - HOLD_BACK
        assert out == want


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("/a%40b/lab", False),
        ("/a%40b/lab/tree/x.ipynb", False),
        ("/a%40b/voila/render/x.ipynb", False),
        ("/a%40b/agnes/login", False),
        ("/a%40b/files/x.html", True),
        ("/a@b/files/x.html", True),
        ("/a%40b//files/x.html", True),
        ("/a%40b/api/contents", True),
        ("/a%40b/static/x.html", True),
        ("/a%40b/nbconvert/html/x.ipynb", True),
        ("/a%40b/voila/files/x.html", True),
        ("/elsewhere/lab", True),
    ],
)
def test_path_rules(path: str, excluded: bool) -> None:
    assert path_excluded(path, BASE) is excluded


def test_signed_out_pages_reset_the_browser_identity():
    """After logout the login page must not keep sending events as the previous user."""
    from jupyter_agnes.auth.principal import Principal
    from jupyter_agnes.observability.posthog_client import ObservabilitySettings
    from jupyter_agnes.observability.snippet import snippet_config

    settings = ObservabilitySettings(api_key="phc_test", host="http://127.0.0.1:9")
    anonymous = snippet_config(settings, None)
    assert anonymous["reset"] is True and anonymous["identify"] is None
    user = Principal(7, "u@example.com", "U", ("Everyone",), False, "session")
    assert snippet_config(settings, user)["reset"] is False
    assert "posthog.reset()" in LOADER_JS


def test_capture_features_that_carry_page_text_are_pinned_off():
    """A PostHog project's remote settings must not be able to switch these on."""
    from jupyter_agnes.observability.posthog_client import ObservabilitySettings
    from jupyter_agnes.observability.snippet import snippet_config

    options = snippet_config(ObservabilitySettings(api_key="phc_t"), None)["options"]
    assert options["autocapture"] is False
    assert options["capture_dead_clicks"] is False
    assert options["rageclick"] is False
    assert options["enable_recording_console_log"] is False
    assert options["session_recording"]["recordBody"] is False
    assert options["session_recording"]["recordHeaders"] is False
    assert options["session_recording"]["maskAllInputs"] is True
    assert options["mask_personal_data_properties"] is True
    assert {"actor", "q"} <= set(options["custom_personal_data_properties"])
    none_mode = snippet_config(ObservabilitySettings(api_key="phc_t", identify_pii="none"), None)
    assert none_mode["options"]["persistence"] == "sessionStorage"
    assert "persistence" not in options
