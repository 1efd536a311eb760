"""`/agnes/access`: what I may use (`access_view.effective_access`) as a page that reads
without JavaScript: groups, each grant with where it comes from, tables (each with a
section `#table-NAME` holding its description and columns), dashboards, and Lab.

Group names can be Google group emails: they are masked in session replays."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

MASKED = 'class="ph-mask" data-sensitive'


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _group_origin(group: dict[str, Any]) -> str:
    if group["google_managed"]:
        return "Google (managed by the Google group; read-only here)"
    return "Agnes (system group)" if group["system"] else "Agnes (set by an admin)"


def groups_section(access: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr><th scope="row"><span {MASKED}>{escape(g["name"])}</span></th>'
        f"<td>{escape(_group_origin(g))}</td></tr>"
        for g in access["groups"]
    )
    table = (
        '<table id="agnes-access-groups"><thead><tr><th scope="col">Group</th>'
        f'<th scope="col">Membership comes from</th></tr></thead><tbody>{rows}</tbody></table>'
        if rows
        else "<p>You are in no group.</p>"
    )
    return f'<h2 id="groups">My groups</h2>{table}'


def grants_section(access: dict[str, Any]) -> str:
    admin = (
        '<p id="agnes-access-admin">You are an <strong>admin</strong>: you may use every '
        "table, every dashboard and JupyterLab, whatever the grants below say.</p>"
        if access["is_admin"]
        else ""
    )
    rows = "".join(
        f"<tr><td>{escape(g['resource_type'])}</td><td><code>{escape(g['resource_id'])}</code>"
        f"</td><td><span {MASKED}>{escape(g['group'])}</span></td>"
        f"<td>{'Google-managed' if g['google_managed'] else 'Agnes'}</td></tr>"
        for g in access["grants"]
    )
    table = (
        '<table id="agnes-access-grants"><thead><tr><th scope="col">Type</th>'
        '<th scope="col">Grants</th><th scope="col">Through group</th>'
        f'<th scope="col">Managed by</th></tr></thead><tbody>{rows}</tbody></table>'
        if rows
        else '<p id="agnes-access-no-grants">No grant reaches you through your groups.</p>'
    )
    return f'<h2 id="grants">My grants</h2>{admin}{table}'


def tables_section(base_url: str, access: dict[str, Any]) -> str:
    tables = access["tables"]
    if tables is None:
        return '<h2 id="tables">My tables</h2><p>No data has been built yet.</p>'
    if not tables:
        return '<h2 id="tables">My tables</h2><p id="agnes-access-no-tables">None yet.</p>'
    items = "".join(
        f'<li><a class="agnes-access-table" href="#table-{escape(t["name"])}">'
        f"{escape(t['name'])}</a></li>"
        for t in tables
    )
    details = "".join(_table_detail(base_url, t) for t in tables)
    return f'<h2 id="tables">My tables</h2><ul id="agnes-access-tables">{items}</ul>{details}'


def _table_detail(base_url: str, table: dict[str, Any]) -> str:
    name = escape(table["name"])
    columns = "".join(
        f"<tr><td><code>{escape(str(c.get('name', '')))}</code></td>"
        f"<td>{escape(str(c.get('type', '')))}</td></tr>"
        for c in table["columns"]
    )
    api = escape(base_url + "agnes/api/catalog/" + quote(table["name"]))
    return (
        f'<section id="table-{name}" aria-labelledby="table-{name}-heading">'
        f'<h3 id="table-{name}-heading">{name}</h3>'
        f"<p>{escape(table['description']) or 'No description.'} "
        f'<span class="muted">{table["rows"]} rows; from {escape(table["source"])}; '
        f'<a href="{api}">catalog entry (JSON, with sample rows)</a></span></p>'
        f'<table><caption class="muted">Columns of {name}</caption><thead><tr>'
        f'<th scope="col">Column</th><th scope="col">Type</th></tr></thead>'
        f"<tbody>{columns}</tbody></table></section>"
    )


def dashboards_section(base_url: str, access: dict[str, Any]) -> str:
    dashboards = access["dashboards"] or []
    items = "".join(
        f'<li><a class="agnes-access-dashboard" '
        f'href="{escape(base_url + "voila/render/" + quote(d["path"]))}">{escape(d["title"])}</a>'
        "</li>"
        for d in dashboards
    )
    listing = f'<ul id="agnes-access-dashboards">{items}</ul>' if items else "<p>None yet.</p>"
    return f'<h2 id="dashboards">My dashboards</h2>{listing}'


def lab_section(base_url: str, access: dict[str, Any]) -> str:
    link = f' <a href="{escape(base_url + "lab")}">Open JupyterLab</a>' if access["lab"] else ""
    return (
        f'<h2 id="lab">JupyterLab</h2><p id="agnes-access-lab">JupyterLab access: '
        f"<strong>{_yes_no(access['lab'])}</strong>.{link}</p>"
    )


def access_body(base_url: str, access: dict[str, Any]) -> str:
    return (
        "<p>What you may use, and where each right comes from. The same data is at "
        f'<a href="{escape(base_url + "agnes/api/me/access")}"><code>GET /agnes/api/me/access'
        "</code></a>.</p>"
        + groups_section(access)
        + grants_section(access)
        + lab_section(base_url, access)
        + dashboards_section(base_url, access)
        + tables_section(base_url, access)
    )
