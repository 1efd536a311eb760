"""What an admin may type for a source: `--option k=v`, `--tables t1,t2` and a schedule.

Checked before anything is saved: keys are identifiers, values are short printable
text (no control characters: they end up in logs and terminals), tables are
`table` or `schema.table` and become an Agnes table named after the table alone.
Schedules are durations, `30s`, `15m`, `1h`, `1d` (pinned: scripts rely on them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from jupyter_agnes.connectors.errors import SourceConfigError
from jupyter_agnes.orchestrator.identifiers import InvalidIdentifier, check_identifier

MAX_OPTIONS = 32
MAX_OPTION_VALUE = 4096
MAX_TABLES = 1000
MIN_SCHEDULE_S = 10
MAX_SCHEDULE_S = 366 * 86400
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"([0-9]{1,7})([smhd])")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def _printable(value: str, what: str) -> str:
    if _CONTROL_RE.search(value):
        raise SourceConfigError(f"{what} holds a control character")
    return value


def parse_option(text: str) -> tuple[str, str]:
    """`key=value` → (key, value); the key is an identifier, the value short and printable."""
    key, sep, value = text.partition("=")
    if not sep:
        raise SourceConfigError(f"Option {text[:40]!r} is not key=value")
    try:
        check_identifier(key, "option")
    except InvalidIdentifier as exc:
        raise SourceConfigError(str(exc)) from None
    if len(value) > MAX_OPTION_VALUE:
        raise SourceConfigError(f"Option {key} is longer than {MAX_OPTION_VALUE} characters")
    return key, _printable(value, f"Option {key}")


def parse_options(items: Iterable[str] | Mapping[str, object]) -> dict[str, str]:
    """`["k=v", …]` (the CLI) or `{"k": "v"}` (REST) → a checked dict; a repeated key is refused."""
    pairs: list[tuple[str, str]] = []
    if isinstance(items, Mapping):
        for key, value in items.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise SourceConfigError("Options must map names to strings")
            pairs.append(parse_option(f"{key}={value}"))
    else:
        pairs = [parse_option(item) for item in items]
    if len(pairs) > MAX_OPTIONS:
        raise SourceConfigError(f"At most {MAX_OPTIONS} options")
    options: dict[str, str] = {}
    for key, value in pairs:
        if key in options:
            raise SourceConfigError(f"Option {key} is given twice")
        options[key] = value
    return options


def refuse_unknown_options(options: Mapping[str, str], allowed: set[str], type_name: str) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise SourceConfigError(
            f"Unknown option(s) for type {type_name}: {', '.join(unknown)} (known: {known})"
        )


def agnes_table(source_table: str) -> str:
    """The Agnes table a source table becomes: its name without the schema."""
    return source_table.rpartition(".")[2].lower()


def parse_tables(value: str | Iterable[str]) -> tuple[str, ...]:
    """`"t1,s.t2"` or `["t1", "s.t2"]` → checked names; two that map to one Agnes table are
    refused (the second would overwrite the first)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    if len(items) > MAX_TABLES:
        raise SourceConfigError(f"At most {MAX_TABLES} tables")
    tables: list[str] = []
    seen: dict[str, str] = {}
    for item in items:
        if not isinstance(item, str):
            raise SourceConfigError("Tables must be strings")
        name = item.strip()
        if not name:
            continue
        parts = name.split(".")
        if len(parts) > 2:
            raise SourceConfigError(f"Table {name[:80]!r} is not `table` or `schema.table`")
        try:
            for part in parts[:-1]:
                check_identifier(part, "schema")
            check_identifier(parts[-1], "table")
        except InvalidIdentifier as exc:
            raise SourceConfigError(str(exc)) from None
        target = agnes_table(name)
        if target in seen:
            raise SourceConfigError(
                f"Tables {seen[target]} and {name} would both become Agnes table {target}"
            )
        seen[target] = name
        tables.append(name)
    return tuple(tables)


def parse_schedule(text: str | None) -> int | None:
    """`30s` / `15m` / `1h` / `1d` → seconds; None or "" → no schedule."""
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise SourceConfigError("A schedule is a duration such as 30s, 15m, 1h or 1d")
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        raise SourceConfigError(
            f"Schedule {text[:20]!r} is not a duration such as 30s, 15m, 1h or 1d"
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds < MIN_SCHEDULE_S:
        raise SourceConfigError(f"A schedule must be at least {MIN_SCHEDULE_S}s")
    if seconds > MAX_SCHEDULE_S:
        raise SourceConfigError("A schedule must be at most 366d")
    return seconds


def format_schedule(seconds: int | None) -> str:
    """The shortest duration text for `seconds` (what `source list` shows)."""
    if not seconds:
        return "-"
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"
