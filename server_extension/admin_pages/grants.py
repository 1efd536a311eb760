"""Grants: every grant with its remove button, and a form to add one with pickers of the
existing groups, tables (the catalog) and dashboards (the dashboards index)."""

from __future__ import annotations

from html import escape
from typing import Any

from jupyter_agnes.dashboards.index import Dashboard
from jupyter_agnes.store.models import GRANT_TYPES
from server_extension.admin_pages.common import action_form, group_name, masked, short_time, table

API = "agnes/api/admin/grants"


def _row(base_url: str, grant: dict[str, Any]) -> list[str]:
    what = f"{grant['resource_type']}:{grant['resource_id']}"
    return [
        f'<a href="{escape(base_url)}agnes/admin/groups/{grant["group_id"]}">'
        + group_name(grant["group"], "agnes-grant-" + str(grant["id"]))
        + "</a>",
        escape(grant["resource_type"]),
        escape(grant["resource_id"]),
        masked(grant["assigned_by"] or ""),
        short_time(grant["assigned_at"]),
        action_form(
            f"{base_url}{API}/{grant['id']}",
            "DELETE",
            "Remove",
            confirm=f"Remove {what} from {{subject}}?",
            danger=True,
            subject=f"agnes-grant-{grant['id']}",
        ),
    ]


def _datalist(key: str, options: list[tuple[str, str]]) -> str:
    items = "".join(
        f'<option value="{escape(value)}">{escape(label)}</option>' for value, label in options
    )
    return f'<datalist id="agnes-targets-{key}">{items}</datalist>'


def grant_form(
    base_url: str,
    group_names: list[str],
    tables: list[str],
    dashboards: list[Dashboard],
) -> str:
    groups = "".join(f'<option value="{escape(n)}">{escape(n)}</option>' for n in group_names)
    types = "".join(
        f'<option value="{escape(t)}">{escape(t)}</option>' for t in GRANT_TYPES
    )
    help_items = "".join(
        f"<li><strong>{escape(t)}</strong>: {escape(gt.id_names)}</li>"
        for t, gt in GRANT_TYPES.items()
    )
    lists = (
        _datalist("table", [("*", "every table")] + [(t, "table") for t in tables])
        + _datalist(
            "dashboard",
            [("*", "every dashboard")]
            + [(d.id, d.title) for d in dashboards if d.id is not None],
        )
        + _datalist("lab", [("*", "JupyterLab")])
    )
    fields = (
        '<label for="agnes-grant-group">Group</label>'
        f'<select name="group" id="agnes-grant-group" class="ph-mask" required>{groups}</select>'
        '<label for="agnes-grant-type">Type</label>'
        f'<select name="resource_type" id="agnes-grant-type" '
        f'data-targets="agnes-grant-resource">{types}</select>'
        '<label for="agnes-grant-resource">Resource (pick from the list or type an id)</label>'
        '<input name="resource_id" id="agnes-grant-resource" required list="agnes-targets-table"'
        ' aria-describedby="agnes-grant-help">'
        f'<ul id="agnes-grant-help" class="muted">{help_items}</ul>'
    )
    return lists + action_form(
        base_url + API, "POST", "Add grant", fields=fields, form_id="agnes-add-grant"
    )


def grants_body(
    base_url: str,
    grants: list[dict[str, Any]],
    group_names: list[str],
    tables: list[str],
    dashboards: list[Dashboard],
) -> str:
    listing = table(
        f"{len(grants)} grants",
        ("Group", "Type", "Resource", "Granted by", "Granted", "Action"),
        (_row(base_url, g) for g in grants),
        "agnes-grants",
    )
    known = (
        f'<p class="muted">{len(tables)} tables in the catalog, {len(dashboards)} dashboards.</p>'
    )
    form = grant_form(base_url, group_names, tables, dashboards)
    return f"<h2>Add a grant</h2>{known}{form}<h2>All grants</h2>{listing}"
