"""Groups and their members: create, delete, add and remove members. System groups and
groups synced from Google Workspace are shown read-only, with the reason."""

from __future__ import annotations

from html import escape
from typing import Any

from jupyter_agnes.auth.google_policy import GOOGLE_SYNC_ACTOR
from jupyter_agnes.store.directory import ADMIN_GROUP
from server_extension.admin_pages.common import (
    action_form,
    group_name,
    masked,
    short_time,
    table,
    text_input,
)

API = "agnes/api/admin/groups"
GOOGLE_REASON = (
    "Managed by Google Workspace: its name is the Google group's email and its members "
    "come from Google, so change them in Google."
)
SYSTEM_REASON = "Built into Agnes: it cannot be renamed or deleted."
GOOGLE_MEMBER_REASON = "From Google Workspace; change it in Google."


def read_only_reason(group: dict[str, Any]) -> str | None:
    if group["created_by"] == GOOGLE_SYNC_ACTOR:
        return GOOGLE_REASON
    if group["is_system"]:
        return SYSTEM_REASON
    return None


def _group_row(base_url: str, group: dict[str, Any]) -> list[str]:
    link = f"{base_url}agnes/admin/groups/{group['id']}"
    reason = read_only_reason(group)
    if reason:
        action = f'<span class="muted agnes-read-only">Read-only. {escape(reason)}</span>'
    else:
        action = action_form(
            f"{base_url}{API}/{group['id']}",
            "DELETE",
            "Delete",
            confirm="Delete the group {subject} and its grants?",
            danger=True,
            subject=f"agnes-group-{group['id']}",
        )
    return [
        f'<a href="{escape(link)}" class="agnes-group-link">'
        + group_name(group["name"], "agnes-group-" + str(group["id"]))
        + "</a>",
        escape(group["description"] or ""),
        short_time(group["created_at"]),
        action,
    ]


def groups_body(base_url: str, groups: list[dict[str, Any]]) -> str:
    listing = table(
        f"{len(groups)} groups; open one to see and change its members",
        ("Group", "Description", "Created", "Action"),
        (_group_row(base_url, g) for g in groups),
        "agnes-groups",
    )
    add = action_form(
        base_url + API,
        "POST",
        "Create group",
        fields=text_input("name", "Name", "agnes-new-group-name", extra=" required")
        + text_input("description", "Description (optional)", "agnes-new-group-description"),
        form_id="agnes-add-group",
    )
    return f"{listing}<h2>Create a group</h2>{add}"


def _member_row(
    base_url: str, group: dict[str, Any], member: dict[str, Any], editable: bool
) -> list[str]:
    subject = f"agnes-member-{member['user_id']}"
    if member["source"] == "google_sync":
        action = f'<span class="muted agnes-read-only">{GOOGLE_MEMBER_REASON}</span>'
    elif not editable:
        action = '<span class="muted agnes-read-only">Managed by Agnes.</span>'
    else:
        action = action_form(
            f"{base_url}{API}/{group['id']}/members/{member['user_id']}",
            "DELETE",
            "Remove",
            confirm="Remove {subject} from this group?",
            danger=True,
            subject=subject,
        )
    access = f"{base_url}agnes/admin/users/{member['user_id']}"
    return [
        f'<a href="{escape(access)}">'
        f'{masked(member["email"], subject)}</a>',
        escape(member["source"]),
        short_time(member["added_at"]),
        action,
    ]


def group_body(
    base_url: str,
    group: dict[str, Any],
    members: list[dict[str, Any]],
    grants: list[dict[str, Any]],
) -> str:
    """One group: its members (with add and remove unless read-only) and its grants."""
    reason = read_only_reason(group)
    # Everyone's members are every user (seeded by Agnes); Admin's are managed here.
    editable = reason is None or group["name"] == ADMIN_GROUP
    note = f'<p>{group_name(group["name"])}: {escape(group["description"] or "")}</p>'
    if reason:
        note += f'<p class="muted agnes-read-only">Read-only. {escape(reason)}</p>'
    listing = table(
        f"{len(members)} members",
        ("Member", "Source", "Added", "Action"),
        (_member_row(base_url, group, m, editable) for m in members),
        "agnes-members",
    )
    add = ""
    if editable:
        add = "<h2>Add a member</h2>" + action_form(
            f"{base_url}{API}/{group['id']}/members",
            "POST",
            "Add member",
            fields=text_input("email", "Email", "agnes-new-member-email", kind="email",
                              extra=' required'),
            form_id="agnes-add-member",
        )
    granted = table(
        "What this group grants (change it on the Grants page)",
        ("Type", "Resource"),
        ([escape(g["resource_type"]), escape(g["resource_id"])] for g in grants),
        "agnes-group-grants",
    )
    return f"{note}{listing}{add}<h2>Grants</h2>{granted}"

