"""`%%sql` and `%sql`: run once, keep the Arrow result, show the first rows."""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.display import display

from jupyter_agnes.magics.context import AgnesContext
from jupyter_agnes.magics.display import result_bundle
from jupyter_agnes.magics.errors import AgnesMagicError
from jupyter_agnes.magics.options import check_limit, check_var, leading_options
from jupyter_agnes.magics.results import FORMATS, SqlResult, convert

DEFAULT_VAR = "_sql"
SQL_OPTIONS = {
    "-o": "var",
    "--output": "var",
    "--limit": "limit",
    "-n": "limit",
    "--format": "format",
    "-f": "format",
}


def run_and_show(
    ctx: AgnesContext, sql: str, var: str = DEFAULT_VAR, fmt: str = "df", limit: int | None = None
) -> SqlResult:
    """Execute once on the current backend, store `var`, display the first rows."""
    if not sql.strip():
        raise AgnesMagicError("No SQL to run: put the query in the cell (or after %sql)")
    shell = ctx.shell
    result = ctx.backend().run_sql(sql, shell.user_ns)
    shell.user_ns[var] = convert(result.table, fmt)
    shown = ctx.settings.display_limit if limit is None else limit
    display(result_bundle(result.table, shown, result.elapsed_s, result.truncated), raw=True)
    return result


def parse_sql_options(line: str, prog: str) -> tuple[str, str, int | None, str]:
    """(var, format, limit, sql-after-the-options)."""
    found, rest = leading_options(line, SQL_OPTIONS, prog)
    var = check_var(found.get("var", DEFAULT_VAR), prog)
    fmt = found.get("format", "df").lower()
    if fmt not in FORMATS:
        raise AgnesMagicError(f"{prog}: --format must be one of {', '.join(FORMATS)}")
    limit = check_limit(found["limit"], prog) if "limit" in found else None
    return var, fmt, limit, rest


@magics_class
class SqlMagics(Magics):
    def __init__(self, shell: Any, ctx: AgnesContext) -> None:
        super().__init__(shell)
        self.ctx = ctx

    @no_var_expand  # IPython would paste $name into the SQL text; we bind it instead
    @line_cell_magic
    def sql(self, line: str, cell: str | None = None) -> None:
        """Run DuckDB SQL once and keep the result.

        %%sql [-o VAR] [--limit N] [--format df|arrow|polars]
        %sql [options] SELECT ...

        The result is stored in VAR (default _sql) as a pandas DataFrame, a pyarrow
        Table or a polars DataFrame; the first N rows (default 20) are shown.
        `$name` is bound as a parameter from the notebook variable `name`.
        """
        prog = "%sql" if cell is None else "%%sql"
        var, fmt, limit, rest = parse_sql_options(line, prog)
        if cell is None:
            sql = rest
        else:
            if rest.strip():
                raise AgnesMagicError(
                    f"%%sql: unexpected {rest.strip()[:40]!r} on the magic line; "
                    "options are -o VAR, --limit N, --format df|arrow|polars"
                )
            sql = cell
        run_and_show(self.ctx, sql, var, fmt, limit)
