"""The connector contract: what a source type implements, what a run is given, and what
it reports. Modelled on `llm/`: a Protocol, a registry (`connectors.registry`) and one
error hierarchy (`connectors.errors`).

A connector reads one configured source and writes a complete extract through
`ExtractWriter` (temp dir, then one rename), so a failed run leaves the previous
extract live. It never stores or shows a credential: `SourceSpec.options` holds only
references (`uri_env`, `uri_file`), resolved at run time by `connectors.credentials`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

# table_progress(table, rows_so_far, rows_per_s): called as batches land, per table.
TableProgress = Callable[[str, int, float], None]


@dataclass(frozen=True)
class SourceSpec:
    """A source as the admin configured it (`jupyter agnes source add`)."""

    name: str
    type: str
    options: Mapping[str, str] = field(default_factory=dict)
    tables: tuple[str, ...] = ()
    schedule_s: int | None = None


@dataclass(frozen=True)
class Cursor:
    """An incremental table's cursor column and the last run's high-water mark (text)."""

    column: str
    high_water: str | None = None


@dataclass
class RunContext:
    """What a run gets besides its spec."""

    data_dir: Path
    cursors: Mapping[str, Cursor] = field(default_factory=dict)  # by Agnes table name
    table_progress: TableProgress | None = None


@dataclass
class TableResult:
    table: str
    rows: int  # rows in the extract's table after the run
    added: int  # rows this run read from the source
    incremental: bool = False
    cursor: Cursor | None = None  # the new high-water mark, when incremental


@dataclass
class RunResult:
    source: str
    tables: dict[str, TableResult] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # one line each, no secrets

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())


@runtime_checkable
class Connector(Protocol):
    """One source type. Instances are cheap and stateless; one per run is fine."""

    type_name: str

    def check(self, spec: SourceSpec) -> None:
        """Refuse a bad configuration with `SourceConfigError` before it is saved."""
        ...

    def run(self, spec: SourceSpec, context: RunContext) -> RunResult:
        """Read the source and commit its extract, or raise a `ConnectorError` and leave
        the previous extract as it was."""
        ...
