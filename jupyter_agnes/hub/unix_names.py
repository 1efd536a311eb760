"""The Unix user each hub user's server runs as, named from the email (a pure rule).

`unix_username(email)` = `ag-` + the email's local part, lower-cased, kept to `[a-z0-9]`
and cut to 16 characters, + `-` + the first 10 hex digits of SHA-256 of the whole
lower-cased, stripped email. At most 30 characters (Linux allows 32), always a valid
`useradd` name, never a system name like `root`. The readable part is a hint for
operators; the hash tells emails apart: two emails get the same name only if their
40-bit hashes collide (about one chance in 10^12 for a pair), and the spawner refuses to
reuse a Unix user that records another email (see `jupyter_agnes.hub.spawner`).
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "ag-"
LOCAL_PART_CHARS = 16
HASH_HEX_DIGITS = 10
MAX_UNIX_NAME = 32  # Linux's limit for user names
_NOT_NAME_CHAR = re.compile(r"[^a-z0-9]")


def normalized_email(email: str) -> str:
    return email.strip().lower()


def unix_username(email: str) -> str:
    """The Unix user name for `email` (any string: it need not be a valid email)."""
    norm = normalized_email(email)
    if not norm:
        raise ValueError("an empty email has no Unix user")
    local = norm.rpartition("@")[0] or norm
    readable = _NOT_NAME_CHAR.sub("", local)[:LOCAL_PART_CHARS]
    digest = hashlib.sha256(norm.encode("utf-8")).hexdigest()[:HASH_HEX_DIGITS]
    return f"{PREFIX}{readable}-{digest}"
