"""jupyter_agnes: a notebook-first data environment on Jupyter."""

from __future__ import annotations

from typing import Any

from jupyter_agnes._version import __version__

__all__ = ["__version__"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from server_extension.app import AgnesExtensionApp

    return [{"module": "server_extension.app", "app": AgnesExtensionApp}]


def load_ipython_extension(ipython: Any) -> None:
    from jupyter_agnes.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from jupyter_agnes.magics import unload_ipython_extension as _unload

    _unload(ipython)
