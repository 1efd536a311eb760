"""Users: the list (searched by email on the server), add, deactivate and reactivate,
and one user's effective access."""

from __future__ import annotations

from html import escape
from typing import Any

from server_extension.admin_pages.common import (
    action_form,
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
        escape(user["name"] or ""),
        "active" if user["active"] else f"deactivated {short_time(user['deactivated_at'])}",
        escape(", ".join(user["groups"])),
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


def access_body(base_url: str, access: dict[str, Any], known_tables: set[str]) -> str:
    """What one user may use: their groups and each grant with the group it comes from."""
    user = access["user"]
    state = "active" if user["active"] else "deactivated"
    head = (
        f'<p>{masked(user["email"])} · {state}'
        + (" · <strong>admin</strong>" if access["is_admin"] else "")
        + "</p>"
    )
    groups = "".join(f"<li>{escape(g)}</li>" for g in access["groups"]) or "<li>None</li>"
    rows = []
    for grant in access["grants"]:
        rid = grant["resource_id"]
        target = escape(rid)
        if grant["resource_type"] == "table" and rid in known_tables:
            target = f'<a href="{escape(base_url)}agnes/api/catalog/{escape(rid)}">{target}</a>'
        rows.append([escape(grant["resource_type"]), target, escape(grant["group"])])
    grants = table(
        "Grants through the user's groups", ("Type", "Resource", "From group"), rows,
        "agnes-user-grants",
    )
    if access["is_admin"]:
        grants += (
            '<p class="muted">As an admin, this user may also use every table and '
            "dashboard, and JupyterLab.</p>"
        )
    return f'{head}<h2>Groups</h2><ul id="agnes-user-groups">{groups}</ul><h2>Grants</h2>{grants}'
