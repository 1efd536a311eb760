"""The one exception every magic raises.

A real exception (not IPython's UsageError, which only prints) so that nbval and CI
see a failed cell. `_render_traceback_` keeps what the notebook shows to one line.
"""

from __future__ import annotations


class AgnesMagicError(Exception):
    """A failure a user can act on; the message is one line and safe to show."""

    def __init__(self, message: str) -> None:
        line = (str(message).strip().splitlines() or ["error"])[0]
        super().__init__(line[:2000])

    def _render_traceback_(self) -> list[str]:  # IPython calls this instead of a traceback
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (DuckDB appends context lines)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
