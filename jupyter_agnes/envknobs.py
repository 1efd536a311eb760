"""Typed readers for documented environment variables.

Every knob is a traitlet on the class that uses it; these helpers only supply
the traitlet's *default*, so each variable is read in exactly one place (see
ARCHITECTURE.md for the table of knobs and their readers).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("jupyter_agnes")

# Every environment variable jupyter_agnes reads (or hands to the LLM SDKs it configures):
# config/agnes.env.template documents each one. Tests clear them all before each test.
KNOWN_PREFIXES = ("AGNES_", "POSTHOG_", "GOOGLE_")
KNOWN_NAMES = frozenset({
    "LOCAL_DEV_MODE",
    "LOCAL_DEV_USER_EMAIL",
    "LOCAL_DEV_GROUPS",
    "SCHEDULER_API_TOKEN",
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_BASE_URL",
    "RELEASE_CHANNEL",
    "JPY_SESSION_NAME",
    # JupyterHub's, set in single-user servers: the magics send it to the Agnes service.
    "JUPYTERHUB_API_TOKEN",
    # jupyter-server's own, read only to tell whether kernels run on a gateway.
    "JUPYTER_GATEWAY_URL",
})


def is_known(name: str) -> bool:
    """Whether `name` is one of jupyter_agnes's environment knobs."""
    return name in KNOWN_NAMES or name.startswith(KNOWN_PREFIXES)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    log.warning("%s=%r is not a boolean; using %s", name, raw, default)
    return default


def _parse_int(raw: str) -> int | None:
    try:
        return int(raw.strip())
    except ValueError:
        return None


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = _parse_int(raw)
    if value is None:
        log.warning("%s=%r is not an integer; using %s", name, raw, default)
        return default
    if minimum is not None and value < minimum:
        log.warning("%s=%r is below %s; using %s", name, raw, minimum, default)
        return default
    return value


def env_whole_number(name: str, default: int, minimum: int) -> int:
    """A whole number of at least `minimum`, else ValueError naming the knob: for limits
    where a silent default would hide the operator's mistake (the server refuses to start)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = _parse_int(raw)
    if value is None or value < minimum:
        raise ValueError(f"{name}={raw!r} must be a whole number of at least {minimum}")
    return value


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return float(raw.strip())
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, raw, default)
        return default


def env_list(name: str) -> list[str]:
    """A comma-separated list, lower-cased, blanks dropped."""
    return [p.strip().lower() for p in os.environ.get(name, "").split(",") if p.strip()]


def local_dev_mode() -> bool:
    """`LOCAL_DEV_MODE`: read here only; AuthService and the PostHog environment share it."""
    return env_bool("LOCAL_DEV_MODE")
