"""Minimal server-rendered pages (sign in, sign out); every value is HTML-escaped."""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Mapping
from html import escape
from pathlib import Path

from jupyter_agnes.auth.login_messages import LOGIN_ERRORS, login_error_message

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Agnes</title>
<style>
body{{font-family:system-ui,sans-serif;background:#f5f6f8;margin:0;display:flex;
min-height:100vh;align-items:center;justify-content:center;color:#1d2330}}
main{{background:#fff;padding:2.5rem;border-radius:12px;box-shadow:0 2px 12px #0002;
max-width:26rem}}
h1{{margin-top:0;font-size:1.5rem}} .error{{background:#fdecea;color:#8a1c12;padding:.75rem;
border-radius:6px}} .notice{{background:#e6f4ea;color:#1e4620;padding:.75rem;border-radius:6px}}
.btn{{display:inline-block;background:#1a73e8;color:#fff;padding:.7rem 1.2rem;
border-radius:6px;text-decoration:none;font-weight:600}} code{{background:#eef;padding:0 .25rem;
overflow-wrap:anywhere}}
.muted{{color:#5b6475;font-size:.9rem}} button.btn{{border:0;font-size:1rem;cursor:pointer}}
</style></head><body><main>
<h1>{heading}</h1>
{body}
</main></body></html>
"""


# Headers a reverse proxy adds: a loopback peer sending one is relaying someone else.
_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP")


def is_local_viewer(remote_ip: str | None, headers: Mapping[str, str]) -> bool:
    """True when the page is read on the server's own machine: a loopback peer that is not
    a proxy forwarding another client. Only then may the sign-in page name the data dir
    (where Agnes keeps its secrets stays private, as in API errors)."""
    try:
        loopback = ipaddress.ip_address(remote_ip or "").is_loopback
    except ValueError:
        return False
    return loopback and not any(name in headers for name in _PROXY_HEADERS)


def _login_link_hint(data_dir: Path | None, *, alert: bool) -> str:
    """How to sign in without Google: the exact `login-link` command for this server's data
    dir when the viewer may see it, else the command with a placeholder."""
    dir_arg = shlex.quote(str(data_dir)) if data_dir is not None else "DATA_DIR"
    command = f"jupyter agnes login-link --data-dir {dir_arg} --email you@example.com"
    where = ""
    if data_dir is None:
        where = (
            '<p class="muted">DATA_DIR is the directory this server was started with '
            "(<code>--data-dir</code> or <code>AGNES_DATA_DIR</code>). Open this page on the "
            "server's own machine to see the exact command.</p>"
        )
    status = ' class="error" role="alert"' if alert else ""
    return (
        f"<p{status}>{escape(LOGIN_ERRORS['google_not_configured'])}</p>"
        "<p>An admin can print a one-time login link on the server with "
        f'<code id="agnes-login-link-command">{escape(command)}</code>.</p>' + where
    )


def login_page(
    *,
    error_code: str | None,
    google_login_url: str | None,
    signed_out: bool = False,
    data_dir: Path | None = None,
) -> str:
    """The sign-in page. `error_code` shows only a known message; `data_dir` is named in
    the login-link hint, so pass it only when `is_local_viewer`."""
    notice = '<p class="notice" role="status">You are signed out.</p>' if signed_out else ""
    error = ""
    if error_code and error_code != "google_not_configured":
        message = login_error_message(error_code)
        error = f'<p class="error" role="alert">{escape(message)}</p>'
    if google_login_url:
        google = (
            f'<p><a class="btn" id="google-login" href="{escape(google_login_url)}">'
            "Sign in with Google</a></p>"
        )
    else:
        google = _login_link_hint(data_dir, alert=error_code == "google_not_configured")
    tokens = (
        '<p class="muted">Scripts and the REST API use personal access tokens '
        "(<code>Authorization: Bearer agnes_pat_…</code>), not this page.</p>"
    )
    body = notice + error + google + tokens
    return _PAGE.format(title="Sign in", heading="Sign in to Agnes", body=body)


# posthog-js masks the text of `ph-mask` elements in replays (rrweb's maskTextClass);
# `data-sensitive` is in Agnes's own mask selector (observability/snippet.py).
_MASKED = 'class="ph-mask" data-sensitive'


def signed_in_as(email: str | None, css_class: str = "") -> str:
    """The "Signed in as EMAIL" line, masked in session replays; nothing when `email` is None
    (`request_helpers.shown_email`: POSTHOG_IDENTIFY_PII=none)."""
    if email is None:
        return ""
    cls = f' class="{css_class}"' if css_class else ""
    return f'<p{cls}>Signed in as <strong id="agnes-user" {_MASKED}>{escape(email)}</strong>.</p>'


def logout_page(
    *, email: str | None, action_url: str, xsrf_form_html: str, cancel_url: str
) -> str:
    """A GET cannot sign anyone out (another site could send it): this asks for a POST."""
    body = signed_in_as(email) + (
        f'<form method="post" action="{escape(action_url)}">{xsrf_form_html}'
        '<button class="btn" id="agnes-logout-confirm" type="submit">Sign out</button> '
        f'<a href="{escape(cancel_url)}">Cancel</a></form>'
    )
    return _PAGE.format(title="Sign out", heading="Sign out of Agnes?", body=body)
