"""Same-origin redirect targets only."""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_NEXT_LEN = 2048


def safe_next(value: str | None, default: str) -> str:
    """`value` if it is a same-origin absolute path, else `default`.

    Refuses `//host`, `/\\host`, schemes (`https:`, `javascript:`), control
    characters and anything a browser might normalise into another origin.
    """
    if not value or len(value) > MAX_NEXT_LEN:
        return default
    if not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value
