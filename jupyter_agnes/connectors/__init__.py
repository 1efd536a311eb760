"""Connectors: each turns some data into a valid extract (see jupyter_agnes.orchestrator)."""

from jupyter_agnes.connectors.local_files import LocalExtractReport, extract_local
from jupyter_agnes.connectors.sample_data import (
    DEFAULT_ROWS,
    SAMPLE_SOURCE,
    generate_sample_data,
    table_checksums,
)

__all__ = [
    "DEFAULT_ROWS",
    "SAMPLE_SOURCE",
    "LocalExtractReport",
    "extract_local",
    "generate_sample_data",
    "table_checksums",
]
