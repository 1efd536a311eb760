"""The extract contract and the orchestrator that turns extracts into analytics.duckdb."""

from jupyter_agnes.orchestrator.build import ANALYTICS_FILE, CATALOG_TABLE, analytics_path
from jupyter_agnes.orchestrator.contract import (
    META_COLUMNS,
    QUERY_MODES,
    ExtractError,
    ExtractInfo,
    TableMeta,
    extract_dir,
    read_extract,
)
from jupyter_agnes.orchestrator.identifiers import (
    IDENTIFIER_RE,
    InvalidIdentifier,
    check_identifier,
    quote_ident,
)
from jupyter_agnes.orchestrator.lock import LockTimeout, rebuild_lock
from jupyter_agnes.orchestrator.orchestrator import Progress, RebuildReport, SyncOrchestrator
from jupyter_agnes.orchestrator.writer import ExtractWriter

__all__ = [
    "ANALYTICS_FILE",
    "CATALOG_TABLE",
    "IDENTIFIER_RE",
    "META_COLUMNS",
    "QUERY_MODES",
    "ExtractError",
    "ExtractInfo",
    "ExtractWriter",
    "InvalidIdentifier",
    "LockTimeout",
    "Progress",
    "RebuildReport",
    "SyncOrchestrator",
    "TableMeta",
    "analytics_path",
    "check_identifier",
    "extract_dir",
    "quote_ident",
    "read_extract",
    "rebuild_lock",
]
