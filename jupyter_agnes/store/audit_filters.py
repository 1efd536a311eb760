"""What a reader of the audit log may ask for: the filters, the page size and the cursor,
parsed and checked once for the REST API, the admin page and the CLI.

Every refusal is an `AuditQueryError` whose message is meant for the caller (a 400).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_ACTOR = 320  # the column's width (an email)
MAX_ACTION = 64
MAX_TARGET = 500
MAX_CURSOR = 64
# Durations as the CLI types them: `90s`, `15m`, `1h`, `7d`, `2w`.
_DURATION = re.compile(r"(\d{1,7})([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = timedelta(days=366 * 100)
_CURSOR = re.compile(r"(\d{1,19})\.(\d{1,19})")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# The query parameters a reader may send (the page's form sends them all, some empty).
PARAMS = ("actor", "action", "target", "since", "until", "limit", "cursor")


class AuditQueryError(ValueError):
    """A filter, limit or cursor the audit log cannot take; the message says which."""


@dataclass(frozen=True)
class Cursor:
    """Where the previous page stopped: the last entry's (ts, id). Opaque to callers."""

    ts: datetime
    id: int

    def encode(self) -> str:
        micros = (self.ts - _EPOCH) // timedelta(microseconds=1)
        return base64.urlsafe_b64encode(f"{micros}.{self.id}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        bad = AuditQueryError("cursor is not one this server gave out")
        if len(text) > MAX_CURSOR:
            raise bad
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise bad from exc
        match = _CURSOR.fullmatch(raw)
        if match is None:
            raise bad
        micros, entry_id = int(match.group(1)), int(match.group(2))
        try:
            ts = _EPOCH + timedelta(microseconds=micros)
        except OverflowError as exc:
            raise bad from exc
        if entry_id > 2**63 - 1 or ts.year > 9999:
            raise bad
        return cls(ts, entry_id)


@dataclass(frozen=True)
class AuditFilter:
    """One read of the audit log, newest first.

    - `actor`: exactly as stored (people's emails are stored lower case; system actors
      read `system:…`);
    - `action_prefix`: entries whose action starts with it (`auth.` or `auth.login`);
    - `target`: the entry's resource, exactly; a trailing `*` makes it a prefix;
    - `since` (inclusive) and `until` (exclusive): the time range, aware UTC;
    - `limit`: entries per page, 1..MAX_LIMIT; `cursor`: continue after that entry.
    """

    actor: str | None = None
    action_prefix: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT
    cursor: Cursor | None = None

    @property
    def target_prefix(self) -> str | None:
        """The prefix a `target` ending in `*` names, else None (an exact target)."""
        if self.target is not None and self.target.endswith("*"):
            return self.target[:-1]
        return None


def parse_time(value: str, name: str, now: datetime) -> datetime:
    """ISO 8601 (a time without a zone is UTC) or a duration before `now` (`1h`, `7d`)."""
    duration = _DURATION.fullmatch(value)
    if duration is not None:
        delta = timedelta(seconds=int(duration.group(1)) * _UNIT_SECONDS[duration.group(2)])
        if delta > MAX_DURATION:
            raise AuditQueryError(f"{name} is too far back (at most {MAX_DURATION.days} days)")
        return now - delta
    if len(value) > 40:
        raise AuditQueryError(f"{name} is too long to be a time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise AuditQueryError(
            f"{name} must be an ISO 8601 time (2026-11-30T16:00:00Z) or a duration "
            "such as 90s, 15m, 1h, 7d or 2w"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _checked_text(value: str, name: str, max_len: int) -> str:
    if len(value) > max_len:
        raise AuditQueryError(f"{name} is longer than {max_len} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise AuditQueryError(f"{name} contains a control character")
    return value


def parse_limit(value: str) -> int:
    if not value.isdigit() or len(value) > 6:
        raise AuditQueryError(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    limit = int(value)
    if not 1 <= limit <= MAX_LIMIT:
        raise AuditQueryError(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return limit


def parse_filter(params: Mapping[str, str], now: datetime | None = None) -> AuditFilter:
    """An `AuditFilter` from query parameters (`PARAMS`); empty values mean "not given".
    Unknown parameters are refused, so a typo never silently widens a read."""
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise AuditQueryError(
            f"unknown parameter {unknown[0]!r} (known: {', '.join(PARAMS)})"
        )
    given = {key: value.strip() for key, value in params.items() if value.strip()}
    now = now or datetime.now(timezone.utc)
    since = parse_time(given["since"], "since", now) if "since" in given else None
    until = parse_time(given["until"], "until", now) if "until" in given else None
    if since is not None and until is not None and since >= until:
        raise AuditQueryError("since must be before until")
    actor = given.get("actor")
    return AuditFilter(
        actor=_checked_text(actor, "actor", MAX_ACTOR) if actor else None,
        action_prefix=(
            _checked_text(given["action"], "action", MAX_ACTION) if "action" in given else None
        ),
        target=_checked_text(given["target"], "target", MAX_TARGET) if "target" in given else None,
        since=since,
        until=until,
        limit=parse_limit(given["limit"]) if "limit" in given else DEFAULT_LIMIT,
        cursor=Cursor.decode(given["cursor"]) if "cursor" in given else None,
    )
