"""Creating and checking the Unix users per-user hub servers run as (root only).

Each user is a system user with no login shell, its home `<base>/<name>` (0700) under a
base directory that others may traverse but not list (0711). The GECOS field records
`agnes-<SHA-256 of the email>`, so a name is reused only for the email it was made for.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import subprocess
import threading
from pathlib import Path

from jupyter_agnes.hub.unix_names import normalized_email

NO_LOGIN_SHELL = "/usr/sbin/nologin"
HOME_BASE_MODE = 0o711
HOME_MODE = 0o700
# useradd locks /etc/passwd; concurrent first spawns take turns instead of failing.
_USERADD_LOCK = threading.Lock()


class UnixUserError(Exception):
    """A reason a server cannot run as this Unix user, fit to show the person."""


def owner_tag(email: str) -> str:
    return "agnes-" + hashlib.sha256(normalized_email(email).encode("utf-8")).hexdigest()


def ensure_home_base(base: Path) -> None:
    """Create the homes' base dir root-owned 0711; an existing one is used as it is if it
    is root's and not writable by others, and refused otherwise (never re-moded: it could
    be /home or /tmp)."""
    try:
        base.mkdir(parents=True)
    except FileExistsError:
        st = base.stat()
        if st.st_uid != 0 or st.st_mode & 0o022:
            raise RuntimeError(
                f"{base} must be owned by root and not group/world-writable to hold homes"
            ) from None
        return
    os.chown(base, 0, 0)
    base.chmod(HOME_BASE_MODE)


def ensure_unix_user(name: str, email: str, home_base: Path) -> pwd.struct_passwd:
    """The Unix user `name` for `email`, created on first use; refuses a user Agnes did not
    make for this email, root, and the hub's own user."""
    with _USERADD_LOCK:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            entry = _create(name, email, home_base)
    if entry.pw_gecos != owner_tag(email):
        raise UnixUserError(
            f"The Unix user {name} already exists and was not created by Agnes for {email}; "
            "an administrator must remove or rename it."
        )
    if entry.pw_uid == 0 or entry.pw_uid == os.getuid():
        raise UnixUserError(f"The Unix user {name} is root or the hub's own user.")
    return entry


def _create(name: str, email: str, home_base: Path) -> pwd.struct_passwd:
    ensure_home_base(home_base)
    home = home_base / name
    result = subprocess.run(
        [
            *("useradd", "--system", "--user-group", "--create-home"),
            *("--home-dir", str(home), "--shell", NO_LOGIN_SHELL),
            *("--comment", owner_tag(email), name),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise UnixUserError(f"Could not create the Unix user {name}: {result.stderr.strip()}")
    home.chmod(HOME_MODE)
    return pwd.getpwnam(name)
