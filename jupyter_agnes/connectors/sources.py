"""Sources an admin configured: add, list, get and remove (the CLI and REST alike).

A source row holds a connector type, its options (credentials only by reference:
`uri_env`, `uri_file`), the tables to read and an optional schedule. Everything is
checked before it is saved: the name, the options' shape (`connectors.options`), and
the connector's own `check`, which refuses missing or inline credentials. Running a
source is `connectors.source_runs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from jupyter_agnes.connectors.base import SourceSpec
from jupyter_agnes.connectors.errors import SourceConfigError
from jupyter_agnes.connectors.options import format_schedule, parse_options, parse_tables
from jupyter_agnes.connectors.registry import get_connector
from jupyter_agnes.orchestrator.identifiers import InvalidIdentifier, check_identifier
from jupyter_agnes.store.directory import audit
from jupyter_agnes.store.engine import BACKGROUND_WAIT_S, Store
from jupyter_agnes.store.models import Source, utcnow


class SourceNotFound(SourceConfigError):
    status = 404


class SourceExists(SourceConfigError):
    status = 409


def check_source_name(name: object) -> str:
    try:
        return check_identifier(name, "source")
    except InvalidIdentifier as exc:
        raise SourceConfigError(str(exc)) from None


def spec_of(row: Source) -> SourceSpec:
    return SourceSpec(
        name=row.name,
        type=row.type,
        options=dict(row.options or {}),
        tables=tuple(row.tables or ()),
        schedule_s=row.schedule_s,
    )


def build_spec(
    name: object,
    type_name: object,
    options: Iterable[str] | Mapping[str, object] = (),
    tables: str | Iterable[str] = (),
    schedule_s: int | None = None,
) -> SourceSpec:
    """A checked spec: the shape here, then the connector's own `check` (credentials)."""
    if not isinstance(type_name, str) or not type_name:
        raise SourceConfigError("A source needs a type")
    spec = SourceSpec(
        name=check_source_name(name),
        type=type_name,
        options=parse_options(options),
        tables=parse_tables(tables),
        schedule_s=schedule_s,
    )
    get_connector(type_name).check(spec)  # unknown type: SourceConfigError naming the known
    return spec


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(timezone.utc).isoformat() if when else None


def source_model(row: Source) -> dict[str, Any]:
    """What `source list` and the admin API show: options are references, never secrets."""
    return {
        "name": row.name,
        "type": row.type,
        "options": dict(row.options or {}),
        "tables": list(row.tables or ()),
        "schedule": format_schedule(row.schedule_s) if row.schedule_s else None,
        "schedule_s": row.schedule_s,
        "created_by": row.created_by,
        "created_at": _iso(row.created_at),
        "last_status": row.last_status,
        "last_run_at": _iso(row.last_run_at),
        "last_error": row.last_error,
        "last_rows": row.last_rows,
        "next_run_at": _iso(row.next_run_at),
    }


def add_source(s: Session, actor: str, spec: SourceSpec) -> Source:
    """Save a checked spec (see `build_spec`); a scheduled source is due at once."""
    if s.get(Source, spec.name) is not None:
        raise SourceExists(f"Source {spec.name} already exists; remove it first")
    row = Source(
        name=spec.name,
        type=spec.type,
        options=dict(spec.options),
        tables=list(spec.tables),
        schedule_s=spec.schedule_s,
        created_by=actor[:320],
        created_at=utcnow(),
        next_run_at=utcnow() if spec.schedule_s else None,
    )
    s.add(row)
    audit(
        s,
        "source.add",
        actor=actor,
        resource=spec.name,
        # Option names only: values are references, but nothing here needs them.
        params={
            "type": spec.type,
            "options": sorted(spec.options),
            "tables": list(spec.tables),
            "schedule_s": spec.schedule_s,
        },
    )
    s.flush()
    return row


def get_source(s: Session, name: str) -> Source:
    row = s.get(Source, check_source_name(name))
    if row is None:
        raise SourceNotFound(f"No source named {name}")
    return row


def list_sources(s: Session) -> list[Source]:
    return list(s.scalars(select(Source).order_by(Source.name)))


def remove_source(s: Session, actor: str, name: str) -> None:
    """Forget the source (and its cursors); its last extract stays until rebuilt away."""
    row = get_source(s, name)
    s.delete(row)
    audit(s, "source.remove", actor=actor, resource=row.name, params={"type": row.type})


def claim_due(store: Store, now: datetime | None = None) -> list[str]:
    """The scheduled sources due now that this process claimed: each claim is one
    conditional UPDATE moving `next_run_at` past now, so of all processes sharing the
    store exactly one wins a given due run."""

    now = now or utcnow()
    with store.read() as s:
        due = s.execute(
            select(Source.name, Source.schedule_s).where(
                Source.schedule_s.is_not(None), Source.next_run_at <= now
            )
        ).all()
    claimed: list[str] = []
    for name, schedule_s in due:
        with store.write(BACKGROUND_WAIT_S) as s:
            won = s.execute(
                update(Source)
                .where(Source.name == name, Source.next_run_at <= now)
                .values(next_run_at=now + timedelta(seconds=int(schedule_s)))
            ).rowcount  # type: ignore[attr-defined]
        if won:
            claimed.append(name)
    return claimed
