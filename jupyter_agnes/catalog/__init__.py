"""The catalog of analytics tables, filtered by grants, and read-only connection helpers."""

from jupyter_agnes.catalog.catalog import (
    Catalog,
    CatalogError,
    CatalogSnapshot,
    TableNotFound,
)
from jupyter_agnes.catalog.connection import AnalyticsConnection, connect_analytics
from jupyter_agnes.catalog.values import to_jsonable
from jupyter_agnes.orchestrator.contract import TableMeta  # a catalog entry

__all__ = [
    "AnalyticsConnection",
    "Catalog",
    "CatalogError",
    "CatalogSnapshot",
    "TableMeta",
    "TableNotFound",
    "connect_analytics",
    "to_jsonable",
]
