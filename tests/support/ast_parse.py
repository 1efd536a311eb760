"""`ast.parse` for tests that read the project's source while other threads may be running.

CPython 3.11 keeps the AST constructor's recursion counter in interpreter-wide state, so an
`ast.parse` in another thread at the same moment (pytest rewriting an import's asserts, say)
can make ours fail with "AST constructor recursion depth mismatch" (CPython gh-106905).
That error says nothing about the source, so it is retried.
"""

from __future__ import annotations

import ast

TRIES = 5


def parse_source(source: str, filename: str = "<unknown>") -> ast.Module:
    for attempt in range(TRIES):
        try:
            return ast.parse(source, filename)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt == TRIES - 1:
                raise
    raise AssertionError("unreachable")
