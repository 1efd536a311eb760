"""Who an event is about, per the identify mode (`POSTHOG_IDENTIFY_PII`).

One place decides which user facts leave the process, for server events, LLM traces
and the browser snippet alike:

- ``none``: no user id at all; the distinct_id is a random per-session id;
- ``id``: the user id;
- ``email``: the user id and email;
- ``full``: the user id, email and name.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from jupyter_agnes.auth.principal import Principal

IDENTIFY_MODES = ("none", "id", "email", "full")

# Random per process: anonymous ids can't be linked to a user id or across restarts.
_PROCESS_KEY = secrets.token_bytes(32)
PROCESS_SESSION_ID = "agnes-anon-" + secrets.token_hex(12)

# Keys a caller might pass that name a person; dropped in `none` mode as a safety net.
USER_KEYS = ("user_id", "email", "name", "$set", "$set_once", "$user_id")


def anonymous_id(user: Principal | None) -> str:
    """A per-session id: random, stable for one login session within this process."""
    if user is None or not user.credential_id:
        return PROCESS_SESSION_ID
    digest = hmac.new(_PROCESS_KEY, user.credential_id.encode(), hashlib.sha256).hexdigest()
    return "agnes-anon-" + digest[:24]


def is_identified(user: Principal | None, mode: str) -> bool:
    return user is not None and mode != "none"


def page_may_name_user(mode: str) -> bool:
    """May a page show who is signed in? Not in ``none`` mode: session replay would record
    the text (the element is also masked with posthog-js's `ph-mask`, in every mode)."""
    return mode != "none"


def distinct_id_for(user: Principal | None, mode: str) -> str:
    if user is None or mode == "none":
        return anonymous_id(user)
    return str(user.user_id)


def user_properties(user: Principal | None, mode: str) -> dict[str, Any]:
    """The user facts an event may carry, per the identify mode."""
    if user is None or mode == "none":
        return {}
    props: dict[str, Any] = {"user_id": str(user.user_id)}
    if mode in ("email", "full"):
        props["email"] = user.email
    if mode == "full":
        props["name"] = user.name
    return props


def person_set(user: Principal | None, mode: str) -> dict[str, Any]:
    """Person properties (`$set`) for PostHog's person profile."""
    props = user_properties(user, mode)
    props.pop("user_id", None)
    return props
