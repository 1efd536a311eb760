"""The HTML of `/agnes/admin/audit`: a GET filter form, the entries newest first, a link
to the next page and the CSV export. It reads without JavaScript.

Actors, targets and details name people, so their cells are masked from session replay
(`ph-mask`, `data-sensitive`) in every POSTHOG_IDENTIFY_PII mode: masking an admin's
view costs nothing and is the safe side of `none`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any
from urllib.parse import urlencode

from jupyter_agnes.store.audit_filters import DEFAULT_LIMIT, MAX_LIMIT

PAGE_PATH = "agnes/admin/audit"
API_PATH = "agnes/api/admin/audit"
ADMIN_PATH = "agnes/admin"
MASKED = 'class="ph-mask" data-sensitive'
FILTER_FIELDS = (
    # (name, label, hint)
    ("actor", "Actor", "exact: an email, or system:google-refresh"),
    ("action", "Action starts with", "e.g. auth. or grant."),
    ("target", "Target", "exact; end with * for a prefix, e.g. table:*"),
    ("since", "Since", "ISO 8601 (UTC unless given) or 1h, 7d"),
    ("until", "Until", "ISO 8601 or a duration ago"),
)
PAGE_SIZES = (DEFAULT_LIMIT, 100, 200, MAX_LIMIT)
STYLE = (
    "<style>.audit-fields{display:flex;flex-wrap:wrap;gap:.5rem 1rem}"
    ".audit-field{display:flex;flex-direction:column;min-width:12rem}"
    ".audit-field input,.audit-field select{padding:.35rem;font-size:.95rem}"
    ".audit-pager{margin-top:1rem}#audit-entries{font-size:.9rem}</style>"
)


def _field(name: str, label: str, hint: str, value: str) -> str:
    return (
        f'<div class="audit-field"><label for="audit-{name}">{escape(label)}</label>'
        f'<input id="audit-{name}" name="{name}" value="{escape(value)}" '
        f'aria-describedby="audit-{name}-hint" autocomplete="off">'
        f'<span class="muted" id="audit-{name}-hint">{escape(hint)}</span></div>'
    )


def _filter_form(base_url: str, params: Mapping[str, str]) -> str:
    fields = "".join(
        _field(name, label, hint, params.get(name, "")) for name, label, hint in FILTER_FIELDS
    )
    chosen = params.get("limit", "") or str(DEFAULT_LIMIT)
    options = "".join(
        f'<option value="{n}"{" selected" if str(n) == chosen else ""}>{n}</option>'
        for n in PAGE_SIZES
    )
    return (
        f'<form method="get" action="{escape(base_url + PAGE_PATH)}" id="audit-filters" '
        'role="search" aria-label="Filter the audit log">'
        f'<div class="audit-fields">{fields}<div class="audit-field">'
        f'<label for="audit-limit">Per page</label><select id="audit-limit" name="limit">'
        f"{options}</select></div></div>"
        '<p><button type="submit" id="audit-apply">Filter</button> '
        f'<a href="{escape(base_url + PAGE_PATH)}" id="audit-clear">Clear filters</a></p>'
        "</form>"
    )


def _row(entry: dict[str, Any]) -> str:
    details = json.dumps(entry["params"], sort_keys=True) if entry["params"] else ""
    return (
        '<tr class="audit-row">'
        f'<td><time datetime="{escape(entry["ts"])}">{escape(entry["ts"][:19])}</time></td>'
        f'<td {MASKED}>{escape(entry["actor"])}</td>'
        f'<td class="audit-action"><code>{escape(entry["action"])}</code></td>'
        f'<td {MASKED}>{escape(entry["resource"])}</td>'
        f"<td>{escape(entry['result'])}</td>"
        f'<td {MASKED}><code>{escape(details)}</code></td></tr>'
    )


def _table(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return '<p id="audit-empty">No audit entries match these filters.</p>'
    head = "".join(
        f'<th scope="col">{h}</th>'
        for h in ("Time (UTC)", "Actor", "Action", "Target", "Result", "Details")
    )
    rows = "".join(_row(e) for e in entries)
    return (
        '<table id="audit-entries"><caption class="muted">Newest first</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


def _link(base_url: str, path: str, params: Mapping[str, str], **extra: str) -> str:
    query = {k: v for k, v in params.items() if v and k != "cursor"} | extra
    return escape(base_url + path + ("?" + urlencode(query) if query else ""))


def audit_page_body(
    base_url: str,
    params: Mapping[str, str],
    page: dict[str, Any] | None,
    error: str | None,
) -> str:
    """The page's body: `params` as the admin sent them (echoed into the form), `page`
    the API's model (`audit_read.page_model`), or `error` when the filters were refused."""
    back = f'<p><a href="{escape(base_url + ADMIN_PATH)}">&larr; Admin console</a></p>'
    top = STYLE + back + _filter_form(base_url, params)
    if error is not None or page is None:
        return top + f'<p class="error" role="alert" id="audit-error">{escape(error or "")}</p>'
    export_params = {k: v for k, v in params.items() if k != "limit"}
    export = (
        f'<a href="{_link(base_url, API_PATH, export_params, format="csv")}" '
        'id="audit-export" download>Export these entries as CSV</a>'
    )
    nav = []
    if params.get("cursor"):
        nav.append(f'<a href="{_link(base_url, PAGE_PATH, params)}" id="audit-newest">Newest</a>')
    if page["next"]:
        nav.append(
            f'<a href="{_link(base_url, PAGE_PATH, params, cursor=page["next"])}" '
            'id="audit-next" rel="next">Older entries &rarr;</a>'
        )
    pager = f'<nav aria-label="Pages" class="audit-pager">{" · ".join(nav)}</nav>' if nav else ""
    return top + f"<p>{export}</p>" + _table(page["entries"]) + pager
