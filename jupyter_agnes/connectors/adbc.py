"""`adbc`: any installed ADBC driver by module name (`--option driver=adbc_driver_sqlite`)
plus a URI; Snowflake, BigQuery, Flight SQL and SQLite all go through here.

Only modules named `adbc_driver_*` are imported: a stored option must never make the
server import arbitrary code.
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType

from jupyter_agnes.connectors.base import SourceSpec
from jupyter_agnes.connectors.errors import SourceConfigError
from jupyter_agnes.connectors.sql_source import AdbcSourceConnector

DRIVER_RE = re.compile(r"^adbc_driver_[a-z0-9_]+$")


def load_driver(name: str) -> ModuleType:
    """The driver's `dbapi` module's package, or SourceConfigError."""
    if not DRIVER_RE.fullmatch(name or ""):
        raise SourceConfigError(
            f"driver {name[:80]!r} is not an ADBC driver module (adbc_driver_NAME, "
            "such as adbc_driver_sqlite)"
        )
    try:
        module = importlib.import_module(name)
        importlib.import_module(f"{name}.dbapi")
    except ImportError:
        raise SourceConfigError(
            f"ADBC driver {name} is not installed in the server "
            f"(pip install {name.replace('_', '-')})"
        ) from None
    return module


class AdbcConnector(AdbcSourceConnector):
    type_name = "adbc"

    def driver_module(self, spec: SourceSpec) -> ModuleType:
        name = spec.options.get("driver", "")
        if not name:
            raise SourceConfigError("The adbc connector needs --option driver=adbc_driver_NAME")
        return load_driver(name)
