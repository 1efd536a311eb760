"""Query errors carry an HTTP-like status so every adapter maps them the same way."""

from __future__ import annotations


class QueryError(Exception):
    status = 400
    reason = "bad_query"

    def __init__(self, message: str, status: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if reason is not None:
            self.reason = reason


class QueryRefused(QueryError):
    """The statement is not a single allowed read, or uses a forbidden feature."""

    reason = "refused"


class TableNotGranted(QueryError):
    """Same message for missing and ungranted tables, so existence is not revealed."""

    status = 404
    reason = "table_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"Table {name[:64]} not found")


class QueryTimeout(QueryError):
    status = 408
    reason = "timeout"
