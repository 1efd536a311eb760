"""Credentials are referenced, never stored: a source's options name an environment
variable (`uri_env=VAR`) or a file (`uri_file=PATH`) holding the connection URI; only a
URI without a secret (a SQLite file) may be given inline (`uri=...`).

`redact` takes a resolved URI (and its password) out of any text before that text is
shown, logged, audited or sent to PostHog: drivers echo their connection string.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from jupyter_agnes.connectors.errors import SourceConfigError

URI_OPTIONS = ("uri", "uri_env", "uri_file")
MAX_URI_FILE_BYTES = 64 * 1024
MASK = "***"


def check_uri_options(options: Mapping[str, str]) -> None:
    """Exactly one of uri / uri_env / uri_file, and an inline uri holds no password."""
    given = [k for k in URI_OPTIONS if options.get(k)]
    if len(given) != 1:
        raise SourceConfigError(
            "Give exactly one of --option uri_env=VAR, uri_file=PATH or uri=..."
        )
    if given == ["uri"] and _password(options["uri"]):
        raise SourceConfigError(
            "An inline uri must not hold a password: use --option uri_env=VAR or uri_file=PATH"
        )


def resolve_uri(options: Mapping[str, str]) -> str:
    """The connection URI the options point at, read now (so a rotated secret is used)."""
    check_uri_options(options)
    if options.get("uri"):
        return options["uri"]
    if options.get("uri_env"):
        name = options["uri_env"]
        value = os.environ.get(name, "")
        if not value:
            raise SourceConfigError(f"Environment variable {name} is not set in the server")
        return value.strip()
    path = Path(options["uri_file"]).expanduser()
    try:
        with path.open("rb") as f:
            data = f.read(MAX_URI_FILE_BYTES + 1)
    except OSError as exc:
        raise SourceConfigError(f"Cannot read uri_file {path}: {exc.strerror}") from None
    if len(data) > MAX_URI_FILE_BYTES:
        raise SourceConfigError(f"uri_file {path} is larger than {MAX_URI_FILE_BYTES} bytes")
    value = data.decode("utf-8", "replace").strip()
    if not value:
        raise SourceConfigError(f"uri_file {path} is empty")
    return value


def _password(uri: str) -> str:
    try:
        return unquote(urlsplit(uri).password or "")
    except ValueError:
        return ""


def secrets_of(uri: str) -> list[str]:
    """The strings that must never be shown: the URI, and its password raw and decoded."""
    found = [uri]
    password = _password(uri)
    if password:
        found += [password, urlsplit(uri).password or ""]
    return [s for s in found if len(s) >= 4]


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (longest first) replaced by ***."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
