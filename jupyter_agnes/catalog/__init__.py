"""The catalog of analytics tables, filtered by grants, and read-only connection helpers."""

from jupyter_agnes.catalog.catalog import (
    Catalog,
    CatalogEntry,
    CatalogError,
    CatalogSnapshot,
    TableNotFound,
)
from jupyter_agnes.catalog.connection import AnalyticsConnection, connect_analytics
from jupyter_agnes.catalog.values import to_jsonable

__all__ = [
    "AnalyticsConnection",
    "Catalog",
    "CatalogEntry",
    "CatalogError",
    "CatalogSnapshot",
    "TableNotFound",
    "connect_analytics",
    "to_jsonable",
]
