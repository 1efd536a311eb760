"""The Voila page header transform on a real tornado server: after `<body…>` exactly once
however the page is chunked, with and without the PostHog transform and gzip, and only on
Voila render pages. The real Voila page: tests/kernel/test_dashboards_access.py."""

from __future__ import annotations

import random

import httpx
import pytest
import tornado.web

from jupyter_agnes.observability.posthog_client import ObservabilitySettings
from server_extension.html_snippet import install_posthog
from server_extension.voila_header import (
    HEADER_ID,
    BodyOpenInjector,
    install_voila_header,
    render_header,
)
from tests.support.observability_tornado import TornadoThread

BASE = "/a%40b/"
HEAD = b"<!DOCTYPE html><html><head><title>t</title></head>\n"
BODY_TAG = b'<body class="jp-Notebook" data-base-url="/a%40b/voila/" data-voila="voila">'
PAGE = HEAD + BODY_TAG + b"".join(b"<div>%d</div>" % i for i in range(300)) + b"</body></html>"
HEADER = render_header(BASE).encode()


class Streamed(tornado.web.RequestHandler):
    async def get(self, _path: str) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        size = int(self.get_argument("size", "0")) or len(PAGE)
        for i in range(0, len(PAGE), size):
            self.write(PAGE[i : i + size])
            await self.flush()


class Refused(tornado.web.RequestHandler):
    def get(self, _path: str) -> None:
        self.set_status(403)
        self.set_header("Content-Type", "text/html")
        self.write(PAGE)


def serve(posthog: bool, compress: bool) -> TornadoThread:
    app = tornado.web.Application(
        [
            (BASE + r"voila/render/(.*)", Streamed),
            (BASE + r"voila/denied/(.*)", Refused),
            (BASE + r"lab/(.*)", Streamed),
        ],
        compress_response=compress,
    )
    install_voila_header(app, BASE)
    install_voila_header(app, BASE)  # once only
    if posthog:
        install_posthog(
            app, ObservabilitySettings(api_key="phc_x", host="http://127.0.0.1:9"), BASE
        )
    return TornadoThread(app)


@pytest.mark.parametrize("posthog", [False, True])
@pytest.mark.parametrize("compress", [False, True])
def test_header_after_body_once_however_chunked(posthog: bool, compress: bool) -> None:
    with serve(posthog, compress) as srv:
        for size in (0, 1, 3, 7, 64, 1000):
            resp = httpx.get(f"{srv.url}{BASE}voila/render/dashboards/sales.ipynb?size={size}")
            body = resp.content
            assert resp.status_code == 200
            assert body.count(HEADER_ID.encode()) == 1, size
            assert BODY_TAG + HEADER in body, size
            assert body.replace(HEADER, b"").replace(b"\n", b"").count(b"<div>") == 300
            assert (b"agnes-posthog-config" in body) == posthog
        other = httpx.get(f"{srv.url}{BASE}lab/x?size=5")
        assert HEADER_ID.encode() not in other.content  # not a Voila page
        assert (other.content == PAGE) != posthog  # PostHog's snippet goes in every page
        denied = httpx.get(f"{srv.url}{BASE}voila/denied/x")
        assert denied.status_code == 403 and HEADER_ID.encode() not in denied.content


def test_header_links_are_escaped_under_the_base_url() -> None:
    header = render_header('/x"><script>/')
    assert "<script>" not in header
    assert render_header(BASE).count(f'href="{BASE}agnes/') == 2
    assert f'href="{BASE}agnes/dashboards"' in render_header(BASE)
    assert f'href="{BASE}agnes/logout"' in render_header(BASE)


def test_injector_random_splits_and_pages_without_a_body() -> None:
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(PAGE)), rng.randint(1, 40)))
        parts = [PAGE[a:b] for a, b in zip([0, *cuts], [*cuts, len(PAGE)], strict=True)]
        inj = BodyOpenInjector(b"<X>")
        out = b"".join(inj.feed(p, i == len(parts) - 1) for i, p in enumerate(parts))
        assert out == PAGE.replace(BODY_TAG, BODY_TAG + b"<X>")
    inj = BodyOpenInjector(b"<X>")
    assert inj.feed(b"<html><bodyguard>no</bodyguard>", True) == b"<html><bodyguard>no</bodyguard>"
    assert not inj.injected
