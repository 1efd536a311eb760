"""Small URL rules shared by the CLI, the hub config and the magics."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback IP address (127.0.0.0/8, ::1); a name is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def site_root_url(value: str) -> str:
    """`http(s)://host[:port]/`: a site's root, normalised to end in `/`; ValueError
    (saying what is wrong) for anything else: another scheme, no host, credentials, a
    path, a query or a fragment."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s)://host[:port]/ URL")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"{value!r} has an invalid port") from None
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{value!r} must have no credentials, query or fragment")
    if parts.path not in ("", "/"):
        raise ValueError(f"{value!r} must be a site's root (no path): the hub serves at /")
    return f"{parts.scheme}://{parts.netloc}/"
