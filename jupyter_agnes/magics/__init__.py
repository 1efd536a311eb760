"""IPython magics: %agnes, %%sql / %sql and %%ask (loaded by the agnes kernel via --ext).

`%load_ext jupyter_agnes` works in any Python kernel; loading twice is harmless.
"""

from __future__ import annotations

from typing import Any

from jupyter_agnes.magics.errors import AgnesMagicError

__all__ = ["AgnesMagicError", "get_context", "load_ipython_extension", "unload_ipython_extension"]

_CONTEXT_ATTR = "_agnes_magics_context"


def load_ipython_extension(ipython: Any) -> None:
    if getattr(ipython, _CONTEXT_ATTR, None) is not None:
        return  # loading twice is harmless
    from jupyter_agnes.magics.agnes_line import AgnesLineMagics
    from jupyter_agnes.magics.ask import AskMagics
    from jupyter_agnes.magics.context import AgnesContext
    from jupyter_agnes.magics.sql import SqlMagics

    ctx = AgnesContext(ipython)
    for cls in (AgnesLineMagics, SqlMagics, AskMagics):
        ipython.register_magics(cls(ipython, ctx))
    setattr(ipython, _CONTEXT_ATTR, ctx)


def unload_ipython_extension(ipython: Any) -> None:
    ctx = getattr(ipython, _CONTEXT_ATTR, None)
    if ctx is not None:
        ctx.close()
    setattr(ipython, _CONTEXT_ATTR, None)


def get_context(ipython: Any) -> Any:
    """The AgnesContext of a shell the extension is loaded in (benchmarks, tests)."""
    return getattr(ipython, _CONTEXT_ATTR, None)
