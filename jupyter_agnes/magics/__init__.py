"""IPython magics: %agnes, %%sql, %%ask (loaded by the agnes kernel via --ext)."""

from __future__ import annotations

from typing import Any

_LOADED_ATTR = "_agnes_magics_loaded"


def load_ipython_extension(ipython: Any) -> None:
    if getattr(ipython, _LOADED_ATTR, False):
        return  # loading twice is harmless
    setattr(ipython, _LOADED_ATTR, True)


def unload_ipython_extension(ipython: Any) -> None:
    setattr(ipython, _LOADED_ATTR, False)
