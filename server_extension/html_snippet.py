"""Inject the PostHog browser snippet into every HTML page, as it streams.

`PostHogSnippetTransform` is a tornado `OutputTransform`. Tornado builds transforms
from the request alone, so each server inserts its own `SnippetTransforms` (which
holds that server's settings and base_url and builds the transform per request) at
the *front* of `web_app.transforms`, so it sees plain bytes before gzip:

    if snippet_enabled(settings):
        web_app.transforms.insert(0, SnippetTransforms(settings, serverapp.base_url))

It puts the snippet before the first `</head>` while holding back at most
`HOLD_BACK` bytes between chunks (Voila streams many small chunks, and `</head>`
may be split across them); it never buffers a page. Headers are edited in place,
so every header, including several Set-Cookie, survives; Content-Length is fixed
or dropped. It leaves alone non-HTML, encoded and attachment responses, user-file
routes, and pages that already hold `posthog.init`.

The streaming part (`StreamInjector`, `start_injection`) is shared: `voila_header.py`
uses it to put a header after `<body…>` of Voila pages.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.web import OutputTransform

from jupyter_agnes.observability.posthog_client import ObservabilitySettings
from jupyter_agnes.observability.snippet import CONFIG_ELEMENT_ID, render_snippet

log = logging.getLogger("jupyter_agnes.observability")

HEAD_CLOSE = re.compile(rb"</head>", re.IGNORECASE)
# Signs the page already loads PostHog (another snippet, or ours from an upstream).
ALREADY = re.compile(rb"posthog\.init|" + re.escape(CONFIG_ELEMENT_ID.encode()))
# Enough to find any marker split across a chunk boundary.
HOLD_BACK = max(len(b"</head>"), len(b"posthog.init"), len(CONFIG_ELEMENT_ID)) - 1

# User files and machine endpoints never get analytics (paths relative to base_url).
EXCLUDED_PREFIXES = (
    "/files/",
    "/api/",
    "/static/",
    "/nbconvert/",
    "/voila/files/",
    "/voila/static/",
    "/lab/api/",
    "/lab/extensions/",
    "/kernelspecs/",
)
NO_BODY_STATUSES = (204, 304)


def snippet_enabled(settings: ObservabilitySettings | None) -> bool:
    """Install the transform only when PostHog is configured."""
    return settings is not None and settings.enabled


def relative_path(path: str, base_url: str) -> str | None:
    """`path` below `base_url` as '/…' (either may be percent-encoded); None if outside."""
    for candidate in (path, unquote(path)):
        for base in (base_url, unquote(base_url)):
            if candidate.startswith(base):
                return "/" + candidate[len(base) :].lstrip("/")
    return None


def path_excluded(path: str, base_url: str = "/") -> bool:
    base = base_url if base_url.endswith("/") else base_url + "/"
    rel = relative_path(path, base)
    if rel is None:  # not under our server: don't guess, don't inject
        return True
    rel = re.sub(r"/{2,}", "/", rel)
    return any(rel.startswith(p) or rel + "/" == p for p in EXCLUDED_PREFIXES)


def should_inject(method: str, path: str, base_url: str, status: int, headers: HTTPHeaders) -> bool:
    if method not in ("GET", "POST") or status < 200 or status in NO_BODY_STATUSES:
        return False
    ctype = headers.get("Content-Type", "").lower()
    if ctype.split(";")[0].strip() != "text/html":
        return False
    if "utf-16" in ctype or "utf-32" in ctype:  # our ASCII snippet would corrupt them
        return False
    if "Content-Encoding" in headers:
        return False
    if "attachment" in headers.get("Content-Disposition", "").lower():
        return False
    return not path_excluded(path, base_url)


class StreamInjector:
    """Insert `snippet` where `locate` says, as a page streams: never buffers the page,
    holds back at most `hold_back` bytes between chunks (a marker may be split across
    them). Subclasses say where (`locate`) and when not to (`already_there`)."""

    hold_back = HOLD_BACK

    def __init__(self, snippet: bytes) -> None:
        self.snippet = snippet
        self.done = False
        self.injected = False
        self._held = b""

    def locate(self, data: bytes) -> int | None:
        """Where to insert in `data`, or None if the place has not streamed yet."""
        raise NotImplementedError

    def already_there(self, data: bytes, end: int) -> bool:
        """Leave the page alone: `data[:end]` shows it already has what we would add."""
        return False

    def feed(self, chunk: bytes, finishing: bool) -> bytes:
        if self.done:
            return chunk
        data = self._held + chunk if self._held else chunk
        self._held = b""
        at = self.locate(data)
        if self.already_there(data, len(data) if at is None else at):
            self.done = True
            return data
        if at is not None:
            self.done = self.injected = True
            return data[:at] + self.snippet + data[at:]
        if finishing:
            self.done = True
            return data
        if len(data) <= self.hold_back:
            self._held = data
            return b""
        self._held = data[-self.hold_back :]
        return data[: -self.hold_back]


class HeadInjector(StreamInjector):
    """Before the first `</head>`, unless the head already loads PostHog."""

    def locate(self, data: bytes) -> int | None:
        match = HEAD_CLOSE.search(data)
        return match.start() if match else None

    def already_there(self, data: bytes, end: int) -> bool:
        return bool(ALREADY.search(data, 0, end))


def start_injection(
    injector: StreamInjector, headers: HTTPHeaders, chunk: bytes, finishing: bool
) -> bytes:
    """Feed a response's first chunk, fixing the headers a changed body invalidates."""
    out = injector.feed(chunk, finishing)
    if finishing:
        if injector.injected:
            if "Content-Length" in headers:
                headers["Content-Length"] = str(len(out))
            headers.pop("Etag", None)  # the body now differs per user
    else:
        # We can't know the final length yet: fall back to chunked encoding.
        if "Content-Length" in headers:
            del headers["Content-Length"]
        headers.pop("Etag", None)
    return out


class InjectingTransform(OutputTransform):
    """A response's transform whose first chunk may start a `StreamInjector`; every later
    chunk then goes through it."""

    injector: StreamInjector | None = None

    def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
        if self.injector is None:
            return chunk
        return self.injector.feed(chunk, finishing)


class PostHogSnippetTransform(InjectingTransform):
    """One response's transform; `SnippetTransforms` builds it with its server's settings."""

    def __init__(
        self,
        request: HTTPServerRequest,
        settings: ObservabilitySettings | None = None,
        base_url: str = "/",
    ) -> None:
        self.request = request
        self.settings = settings
        self.base_url = base_url or "/"

    def transform_first_chunk(
        self, status_code: int, headers: HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, HTTPHeaders, bytes]:
        settings = self.settings
        if not snippet_enabled(settings):
            return status_code, headers, chunk
        req = self.request
        if not should_inject(req.method or "", req.path, self.base_url, status_code, headers):
            return status_code, headers, chunk
        try:
            # The identity provider leaves the user on the request during prepare().
            principal: Any = getattr(req, "agnes_principal", None)
            snippet = render_snippet(settings, principal).encode()  # type: ignore[arg-type]
        except Exception:
            log.warning("PostHog snippet not rendered", exc_info=True)
            return status_code, headers, chunk
        self.injector = HeadInjector(snippet)
        return status_code, headers, start_injection(self.injector, headers, chunk, finishing)


@dataclass(frozen=True)
class SnippetTransforms:
    """What one server puts in `web_app.transforms`: tornado calls it with each request."""

    settings: ObservabilitySettings
    base_url: str = "/"

    def __call__(self, request: HTTPServerRequest) -> PostHogSnippetTransform:
        return PostHogSnippetTransform(request, self.settings, self.base_url)


def install_posthog(web_app: Any, settings: ObservabilitySettings, base_url: str = "/") -> bool:
    """One call for the extension: error capture and this server's snippet transform.

    Returns False (and installs nothing) when PostHog is not configured.
    """
    from server_extension.error_capture import install_error_capture

    if not snippet_enabled(settings):
        return False
    install_error_capture()
    if not any(isinstance(t, SnippetTransforms) for t in web_app.transforms):
        # At the front: before GZipContentEncoding, so we see plain bytes.
        web_app.transforms.insert(0, SnippetTransforms(settings, base_url))
    return True
