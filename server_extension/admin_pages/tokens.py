"""Tokens: every personal access token with its owner's email, and revoke."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from server_extension.admin_pages.common import action_form, masked, short_time, table

API = "agnes/api/admin/tokens"


def _state(token: dict[str, Any], now: datetime) -> str:
    if token["revoked_at"]:
        return f"revoked {short_time(token['revoked_at'])}"
    if datetime.fromisoformat(token["expires_at"]) <= now:
        return "expired"
    return "active"


def _row(
    base_url: str, token: dict[str, Any], emails: dict[int, str], now: datetime
) -> list[str]:
    owner = emails.get(token["user_id"], f"user {token['user_id']}")
    state = _state(token, now)
    action = ""
    if state == "active":
        action = action_form(
            f"{base_url}{API}/{token['id']}",
            "DELETE",
            "Revoke",
            confirm=f"Revoke the token {token['name']} ({token['prefix']}…) of {{subject}}?",
            danger=True,
            subject=f"agnes-token-{token['id']}",
        )
    last_use = short_time(token["last_used_at"])
    if token["last_used_ip"]:
        last_use += f" from {escape(token['last_used_ip'])}"
    return [
        masked(owner, f"agnes-token-{token['id']}"),
        escape(token["name"]),
        f"<code>{escape(token['prefix'])}…</code>",
        escape(", ".join(token["scopes"])),
        short_time(token["created_at"]),
        short_time(token["expires_at"]),
        last_use,
        state,
        action,
    ]


def tokens_body(
    base_url: str, tokens: list[dict[str, Any]], emails: dict[int, str], now: datetime
) -> str:
    return table(
        f"{len(tokens)} personal access tokens, newest first",
        ("Owner", "Name", "Prefix", "Scopes", "Created", "Expires", "Last used", "State",
         "Action"),
        (_row(base_url, t, emails, now) for t in tokens),
        "agnes-tokens",
    )
