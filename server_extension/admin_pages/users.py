"""Users: the list (searched by email on the server), add, deactivate and reactivate,
and one user's effective access."""

from __future__ import annotations

from html import escape
from typing import Any

from server_extension.admin_pages.common import (
    action_form,
    group_name,
    masked,
    short_time,
    table,
    text_input,
)

API = "agnes/api/admin/users"


def matching(users: list[dict[str, Any]], query: str) -> list[dict[str, Any]]:
    """The users whose email (or name) contains `query`, case-insensitively."""
    needle = query.strip().lower()
    if not needle:
        return users
    return [u for u in users if needle in u["email"] or needle in (u["name"] or "").lower()]


def _state_form(base_url: str, user: dict[str, Any]) -> str:
    url = f"{base_url}{API}/{user['id']}/"
    if user["active"]:
        return action_form(
            url + "deactivate",
            "POST",
            "Deactivate",
            confirm="Deactivate {subject}? Their sessions and tokens stop working.",
            danger=True,
            subject=_subject(user),
        )
    return action_form(url + "activate", "POST", "Reactivate", subject=_subject(user))


def _subject(user: dict[str, Any]) -> str:
    return f"agnes-user-{user['id']}"


def _row(base_url: str, user: dict[str, Any]) -> list[str]:
    access = f"{base_url}agnes/admin/users/{user['id']}"
    kind = " (service)" if user["is_service"] else ""
    return [
        f'<a href="{escape(access)}" class="agnes-user-access">'
        f'{masked(user["email"], _subject(user))}</a>{kind}',
        masked(user["name"] or ""),
        "active" if user["active"] else f"deactivated {short_time(user['deactivated_at'])}",
        ", ".join(group_name(g) for g in user["groups"]),
        short_time(user["created_at"]),
        _state_form(base_url, user),
    ]


def users_body(base_url: str, users: list[dict[str, Any]], query: str) -> str:
    search = (
        f'<form method="get" action="{escape(base_url)}agnes/admin/users" role="search">'
        + text_input("q", "Search by email", "agnes-user-search", kind="search",
                     extra=f' value="{escape(query)}"')
        + ' <button type="submit" class="secondary">Search</button></form>'
    )
    shown = matching(users, query)
    caption = f"{len(shown)} of {len(users)} users" + (f" matching “{query}”" if query else "")
    listing = table(
        caption,
        ("Email", "Name", "State", "Groups", "Created", "Action"),
        (_row(base_url, u) for u in shown),
        "agnes-users",
    )
    add = action_form(
        base_url + API,
        "POST",
        "Add user",
        fields=text_input("email", "Email", "agnes-new-user-email", kind="email",
                          extra=" required")
        + text_input("name", "Name (optional)", "agnes-new-user-name")
        + '<label><input type="checkbox" name="admin" id="agnes-new-user-admin"> Admin</label>',
        form_id="agnes-add-user",
    )
    return f"{search}{listing}<h2>Add a user</h2>{add}"


def _names(items: list[str] | None, empty: str) -> str:
    if items is None:
        return f"<p>{escape(empty)}</p>"
    return "<ul>" + ("".join(f"<li>{escape(n)}</li>" for n in items) or "<li>None</li>") + "</ul>"


def access_body(access: dict[str, Any]) -> str:
    """What one user may use (`access_view.effective_access`): their groups, each grant
    with the group it comes from, and the Lab, tables and dashboards that adds up to."""
    user = access["user"]
    state = "active" if user["active"] else "deactivated: may use nothing until reactivated"
    head = (
        f'<p>{masked(user["email"])} · {state}'
        + (" · <strong>admin</strong>: every table, dashboard and JupyterLab"
           if access["is_admin"] else "")
        + "</p>"
    )
    groups = table(
        "The user's groups",
        ("Group", "Membership comes from"),
        (
            [group_name(g["name"]), "Google (read-only here)" if g["google_managed"]
             else escape(g["membership_source"])]
            for g in access["groups"]
        ),
        "agnes-user-groups",
    )
    grants = table(
        "Grants through the user's groups",
        ("Type", "Resource", "From group", "Managed by"),
        (
            [escape(g["resource_type"]), escape(g["resource_id"]), group_name(g["group"]),
             "Google" if g["google_managed"] else "Agnes"]
            for g in access["grants"]
        ),
        "agnes-user-grants",
    )
    has_lab = "yes" if access["lab"] else "no"
    lab = f'<p id="agnes-user-lab">JupyterLab: <strong>{has_lab}</strong></p>'
    tables = [t["name"] for t in access["tables"]] if access["tables"] is not None else None
    dashboards = [d["title"] for d in access["dashboards"] or []]
    return (
        f"{head}<h2>Groups</h2>{groups}<h2>Grants</h2>{grants}<h2>What that adds up to</h2>{lab}"
        f'<h3>Tables</h3><div id="agnes-user-tables">'
        f"{_names(tables, 'No data has been built yet.')}</div>"
        f'<h3>Dashboards</h3><div id="agnes-user-dashboards">{_names(dashboards, "")}</div>'
    )
