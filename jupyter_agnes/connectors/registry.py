"""Which connector serves a source type.

Built-ins are named here by import path and imported on first use (so loading the
package never imports a database driver). Third-party connectors register through the
entry point group `jupyter_agnes.connectors`: `name = "module:ConnectorClass"`; a
built-in name cannot be taken over.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from jupyter_agnes.connectors.base import Connector
from jupyter_agnes.connectors.errors import SourceConfigError

ENTRY_POINT_GROUP = "jupyter_agnes.connectors"

BUILTIN = {
    "local": "jupyter_agnes.connectors.local_files:LocalFilesConnector",
    "sample": "jupyter_agnes.connectors.sample_data:SampleConnector",
    "postgres": "jupyter_agnes.connectors.postgres:PostgresConnector",
    "adbc": "jupyter_agnes.connectors.adbc:AdbcConnector",
}


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _plugins() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in BUILTIN}


def connector_types() -> list[str]:
    """Every type a source may name: the built-ins, then installed plugins."""
    return [*BUILTIN, *sorted(_plugins())]


def get_connector(type_name: str) -> Connector:
    """A connector instance for `type_name`, or `SourceConfigError` naming the known types."""
    if type_name in BUILTIN:
        factory = _load(BUILTIN[type_name])
    else:
        plugin = _plugins().get(type_name)
        if plugin is None:
            known = ", ".join(connector_types())
            raise SourceConfigError(f"Unknown source type {type_name!r} (known: {known})")
        try:
            factory = plugin.load()
        except Exception as exc:  # a broken plugin must not take the server down
            raise SourceConfigError(
                f"The connector plugin for {type_name!r} failed to load: {type(exc).__name__}"
            ) from None
    connector = factory()
    if not isinstance(connector, Connector):
        raise SourceConfigError(f"The connector for {type_name!r} is not a Connector")
    return connector
