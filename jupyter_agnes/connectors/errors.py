"""One error hierarchy for every connector.

Messages are built by us and carry no credential: a driver's own text can echo the
connection URI, so it is passed through `credentials.redact` before it lands in a
job, a log line, an audit row or PostHog.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base class: a run failed and the previous extract is kept."""


class SourceConfigError(ConnectorError):
    """The source's configuration is wrong (unknown type, bad option, no such table)."""


class SourceUnavailableError(ConnectorError):
    """The source could not be reached (refused, timed out, DNS)."""


class SourceAuthError(ConnectorError):
    """The source refused the credentials."""


class SourceQueryError(ConnectorError):
    """A query against the source failed, possibly mid-stream."""


class SchemaChangeError(ConnectorError):
    """A column the extract has was dropped or retyped at the source."""


__all__ = [
    "ConnectorError",
    "SchemaChangeError",
    "SourceAuthError",
    "SourceConfigError",
    "SourceQueryError",
    "SourceUnavailableError",
]
