"""The frame every signed-in Agnes page shares (dashboards, tokens, access, admin):
one stylesheet, one navigation bar, the masked "Signed in as" line and sign-out.

Pages are server-rendered so they read without JavaScript; a page's own script only
adds actions over the REST API. Every value passed in must already be escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from server_extension.pages import signed_in_as

STYLE = """
body{font-family:system-ui,sans-serif;background:#f5f6f8;margin:0;color:#1d2330}
main{max-width:60rem;margin:2rem auto;background:#fff;padding:2rem 2.5rem;border-radius:12px;
box-shadow:0 2px 12px #0002} h1{margin-top:0} li{margin:.4rem 0}
.muted{color:#5b6475;font-size:.9rem} nav.agnes-nav{display:flex;gap:1rem;align-items:center;
flex-wrap:wrap;margin-bottom:1.5rem;border-bottom:1px solid #dde1e8;padding-bottom:.75rem}
nav.agnes-nav a[aria-current=page]{font-weight:700;text-decoration:none;color:#1d2330}
a{color:#0b57d0} a:focus,button:focus,input:focus,select:focus{outline:3px solid #0b57d0;
outline-offset:2px} table{border-collapse:collapse;width:100%} th,td{text-align:left;
padding:.35rem .5rem;border-bottom:1px solid #e3e6ec;vertical-align:top}
.error{background:#fdecea;color:#8a1c12;padding:.75rem;border-radius:6px}
.notice{background:#e6f4ea;color:#1e4620;padding:.75rem;border-radius:6px}
button,.btn{background:#0b57d0;color:#fff;border:0;padding:.45rem .9rem;border-radius:6px;
font-size:.95rem;cursor:pointer} button.secondary{background:#eef1f6;color:#1d2330}
button.danger{background:#b3261e} label{display:block;margin:.5rem 0 .2rem;font-weight:600}
code,pre{background:#eef;padding:0 .25rem;overflow-wrap:anywhere;white-space:pre-wrap}
.sign-out{margin-left:auto}
"""


@dataclass(frozen=True)
class NavLink:
    key: str  # what `current` names
    path: str  # relative to base_url
    label: str


NAV = (
    NavLink("dashboards", "agnes/dashboards", "Dashboards"),
    NavLink("tokens", "agnes/tokens", "Tokens"),
    NavLink("access", "agnes/access", "My access"),
)
ADMIN_NAV = NavLink("admin", "agnes/admin", "Admin")
LAB_NAV = NavLink("lab", "lab", "JupyterLab")


def nav_bar(
    base_url: str, current: str, *, is_admin: bool, has_lab: bool, xsrf_form_html: str
) -> str:
    links = list(NAV) + ([ADMIN_NAV] if is_admin else []) + ([LAB_NAV] if has_lab else [])
    items = "".join(
        f'<a href="{escape(base_url + link.path)}" id="agnes-nav-{link.key}"'
        + (' aria-current="page"' if link.key == current else "")
        + f">{escape(link.label)}</a>"
        for link in links
    )
    sign_out = (
        f'<form class="sign-out" method="post" action="{escape(base_url + "agnes/logout")}">'
        f'{xsrf_form_html}<button type="submit" class="secondary" id="agnes-sign-out">'
        "Sign out</button></form>"
    )
    return f'<nav class="agnes-nav" aria-label="Agnes">{items}{sign_out}</nav>'


def render_page(
    *,
    title: str,
    body: str,
    base_url: str,
    current: str,
    email: str | None,
    is_admin: bool,
    has_lab: bool,
    xsrf_form_html: str,
    script: str = "",
) -> str:
    """A whole page. `body` and `script` are trusted HTML/JS built by the caller with every
    value escaped; `email` is None to name nobody (`request_helpers.shown_email`)."""
    nav = nav_bar(
        base_url, current, is_admin=is_admin, has_lab=has_lab, xsrf_form_html=xsrf_form_html
    )
    tail = f"<script>{script}</script>" if script else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · Agnes</title><style>{STYLE}</style></head><body>"
        f"<main>{nav}<h1>{escape(title)}</h1>{signed_in_as(email, 'muted')}{body}</main>"
        f"{tail}</body></html>"
    )
