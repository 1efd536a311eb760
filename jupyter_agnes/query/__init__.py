"""The sandboxed, RBAC-checked query runner and the per-user query slots."""

from jupyter_agnes.query.admission import QueryBusy, QuerySlots
from jupyter_agnes.query.classify import check_query
from jupyter_agnes.query.errors import QueryError, QueryRefused, QueryTimeout, TableNotGranted
from jupyter_agnes.query.results import ARROW_STREAM_TYPE, CSV_TYPE, JSON_TYPE, QueryResult
from jupyter_agnes.query.sandbox import QueryRunner, sql_sha256

__all__ = [
    "ARROW_STREAM_TYPE",
    "CSV_TYPE",
    "JSON_TYPE",
    "QueryBusy",
    "QueryError",
    "QueryRefused",
    "QueryResult",
    "QueryRunner",
    "QuerySlots",
    "QueryTimeout",
    "TableNotGranted",
    "check_query",
    "sql_sha256",
]
