"""A slim header on every Voila dashboard page: back to the dashboards, and sign out.

Voila renders dashboards with its own templates and streams them, so the header is
added by an output transform as the page streams, right after `<body…>`, with the
streaming machinery of html_snippet.py. It is installed whether or not PostHog is on.
"Sign out" links to GET `agnes/logout`, which asks before its button POSTs (with XSRF).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape
from typing import Any

from tornado.httputil import HTTPHeaders, HTTPServerRequest

from server_extension.html_snippet import (
    InjectingTransform,
    StreamInjector,
    relative_path,
    should_inject,
    start_injection,
)
from server_extension.request_helpers import DASHBOARDS_PAGE

HEADER_ID = "agnes-voila-header"
BODY_OPEN = re.compile(rb"<body(?:\s[^>]*)?>", re.IGNORECASE)
VOILA_RENDER = "/voila/render/"
# Voila's <body> tag carries a few attributes; a longer one is not waited for.
MAX_BODY_TAG = 4096

_STYLE = (
    "position:sticky;top:0;z-index:10000;display:flex;gap:1.25rem;align-items:center;"
    "padding:.45rem 1rem;background:#1d2330;font:14px/1.4 system-ui,sans-serif"
)
_LINK = "color:#fff;text-decoration:none"


def render_header(base_url: str) -> str:
    back = escape(base_url + DASHBOARDS_PAGE)
    logout = escape(base_url + "agnes/logout")
    return (
        f'<nav id="{HEADER_ID}" style="{_STYLE}">'
        f'<a id="agnes-back-to-dashboards" href="{back}" style="{_LINK}">&larr; Dashboards</a>'
        f'<a id="agnes-voila-sign-out" href="{logout}" style="{_LINK};margin-left:auto">'
        "Sign out</a></nav>"
    )


class BodyOpenInjector(StreamInjector):
    """Right after the first `<body…>` tag."""

    hold_back = MAX_BODY_TAG

    def locate(self, data: bytes) -> int | None:
        match = BODY_OPEN.search(data)
        return match.end() if match else None

    def already_there(self, data: bytes, end: int) -> bool:
        return HEADER_ID.encode() in data[:end]


def is_voila_page(path: str, base_url: str) -> bool:
    rel = relative_path(path, base_url if base_url.endswith("/") else base_url + "/")
    return rel is not None and rel.startswith(VOILA_RENDER)


class VoilaHeaderTransform(InjectingTransform):
    """One response's transform: a header on a Voila render page, nothing elsewhere."""

    def __init__(self, request: HTTPServerRequest, base_url: str = "/") -> None:
        self.request = request
        self.base_url = base_url or "/"

    def transform_first_chunk(
        self, status_code: int, headers: HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, HTTPHeaders, bytes]:
        req = self.request
        if status_code != 200 or not is_voila_page(req.path, self.base_url):
            return status_code, headers, chunk
        if not should_inject(req.method or "", req.path, self.base_url, status_code, headers):
            return status_code, headers, chunk
        self.injector = BodyOpenInjector(render_header(self.base_url).encode())
        return status_code, headers, start_injection(self.injector, headers, chunk, finishing)


@dataclass(frozen=True)
class VoilaHeaderTransforms:
    """What one server puts in `web_app.transforms`: tornado calls it with each request."""

    base_url: str = "/"

    def __call__(self, request: HTTPServerRequest) -> VoilaHeaderTransform:
        return VoilaHeaderTransform(request, self.base_url)


def install_voila_header(web_app: Any, base_url: str = "/") -> None:
    if not any(isinstance(t, VoilaHeaderTransforms) for t in web_app.transforms):
        # At the front: before GZipContentEncoding, so we see plain bytes.
        web_app.transforms.insert(0, VoilaHeaderTransforms(base_url))
