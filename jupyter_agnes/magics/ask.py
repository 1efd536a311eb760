"""`%%ask`: send the cell to the configured LLM; stream the answer into the output.

`--format sql` is text-to-SQL: the model sees table schemas only (rows only with
--with-samples) and answers {"sql", "explanation"}; `--run` executes the SQL like %%sql,
after checking it is one read statement over known tables (model output is untrusted).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from IPython.core.magic import Magics, cell_magic, magics_class, no_var_expand
from IPython.display import Markdown, display

from jupyter_agnes.magics.context import AgnesContext
from jupyter_agnes.magics.errors import AgnesMagicError
from jupyter_agnes.magics.options import MagicArgumentParser, check_limit, check_var
from jupyter_agnes.magics.params import fill_prompt
from jupyter_agnes.magics.sql import DEFAULT_VAR as SQL_VAR
from jupyter_agnes.magics.sql import run_and_show

ASK_VAR = "_ask"
ASK_FORMATS = ("markdown", "code", "json", "sql")
SQL_SCHEMA = {
    "type": "object",
    "properties": {
        "sql": {"type": "string", "description": "One DuckDB SELECT statement"},
        "explanation": {"type": "string", "description": "What the query does, briefly"},
    },
    "required": ["sql", "explanation"],
    "additionalProperties": False,
}
SYSTEM = {
    "markdown": "You are Agnes, a data assistant inside a Jupyter notebook. Answer in Markdown.",
    "code": "You are Agnes, a data assistant inside a Jupyter notebook. Answer with Python "
    "code only, in a single ```python fenced block, with no prose outside it.",
    "json": "You are Agnes, a data assistant. Answer with a single JSON object and nothing else.",
}
SAMPLE_ROWS = 3
MAX_TABLES = 200
UPDATE_EVERY_S = 0.1
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n(.*?)```", re.DOTALL)


def _parser() -> MagicArgumentParser:
    parser = MagicArgumentParser("%%ask")
    parser.add_argument("--model", default=None)
    parser.add_argument("--format", default="markdown", type=str.lower, choices=ASK_FORMATS)
    parser.add_argument("--run", action="store_true")
    parser.add_argument("-o", "--output", dest="var", default=None)
    parser.add_argument("--with-samples", action="store_true")
    parser.add_argument("--limit", default=None)
    return parser


def fenced_code(text: str) -> str:
    """The first fenced block's body, else the whole text."""
    match = _FENCE.search(text)
    return (match.group(2) if match else text).strip("\n")


def parse_json_answer(text: str) -> Any:
    for candidate in (text.strip(), fenced_code(text).strip()):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise AgnesMagicError("The model's answer is not valid JSON; try again, or --format markdown")


def schema_prompt(backend: Any, with_samples: bool) -> str:
    """Table schemas (and, only if asked, a few sample rows) for the model."""
    lines: list[str] = []
    for t in backend.tables()[:MAX_TABLES]:
        cols = ", ".join(f"{c.get('name')} {c.get('type')}" for c in t.get("columns") or [])
        desc = f" -- {t['description']}" if t.get("description") else ""
        lines.append(f"TABLE {t.get('name')} ({cols}){desc}")
        if with_samples:
            sample = backend.describe(str(t.get("name")), SAMPLE_ROWS).get("sample") or {}
            lines.append(f"  sample columns: {json.dumps(sample.get('columns') or [])}")
            for row in sample.get("rows") or []:
                lines.append(f"  sample row: {json.dumps(row, default=str)}")
    return "\n".join(lines) or "(no tables)"


@magics_class
class AskMagics(Magics):
    def __init__(self, shell: Any, ctx: AgnesContext) -> None:
        super().__init__(shell)
        self.ctx = ctx
        self.parser = _parser()

    @no_var_expand
    @cell_magic
    def ask(self, line: str, cell: str) -> None:
        """Ask the configured LLM.

        %%ask [--model M] [--format markdown|code|json|sql] [--run] [-o VAR] [--with-samples]

        {var} in the cell is replaced by the notebook variable var (unknown names stay).
        --format sql answers with DuckDB SQL over the catalog; --run executes it.
        The answer goes to VAR (default _ask); with --run, VAR (default _sql) gets the
        query result and _ask the {"sql", "explanation"} answer.
        """
        if self.ctx.remote is None and self.ctx.service() is not None:
            # The provider key must not be handed to per-user servers; the service has no
            # LLM endpoint yet.
            raise AgnesMagicError(
                "%%ask is not available in a JupyterHub server yet: LLM calls must go "
                "through the Agnes service, which does not offer them yet"
            )
        args = self.parser.parse_line(line)
        var = check_var(args.var, "%%ask") if args.var else None
        limit = check_limit(args.limit, "%%ask") if args.limit is not None else None
        if args.run and args.format != "sql":
            raise AgnesMagicError("%%ask: --run works with --format sql only")
        prompt = fill_prompt(cell, self.shell.user_ns).strip()
        if not prompt:
            raise AgnesMagicError("%%ask: the cell is empty; write the question below %%ask")
        provider = self._provider(args.model)
        trace = self.ctx.trace_context("%%ask")
        if args.format == "sql":
            self._ask_sql(provider, prompt, args, var, limit, trace)
            return
        text = self._stream(provider, args.format, prompt, trace)
        if args.format == "code":
            code = fenced_code(text)
            self.shell.user_ns[var or ASK_VAR] = code
            self.shell.set_next_input(code, replace=False)
        elif args.format == "json":
            self.shell.user_ns[var or ASK_VAR] = parse_json_answer(text)
        else:
            self.shell.user_ns[var or ASK_VAR] = text

    # --- steps ---------------------------------------------------------------------------

    def _provider(self, model: str | None) -> Any:
        from jupyter_agnes.llm import LLMError, LLMSettings, get_provider

        try:
            settings = LLMSettings(parent=self.shell)
            if model:
                settings.model = model
            return get_provider(settings)
        except LLMError as exc:  # e.g. no API key: the message names the variable
            raise AgnesMagicError(str(exc)) from None

    def _stream(self, provider: Any, fmt: str, prompt: str, trace: dict[str, Any]) -> str:
        from jupyter_agnes.llm import LLMError

        messages = [{"role": "system", "content": SYSTEM[fmt]}, {"role": "user", "content": prompt}]
        handle = display(Markdown("_…_"), display_id=True)
        parts: list[str] = []
        last = 0.0
        try:
            for chunk in provider.complete(
                messages, self.ctx.settings.ask_max_tokens, stream=True, trace_context=trace
            ):
                parts.append(chunk)
                now = time.monotonic()
                if handle is not None and now - last >= UPDATE_EVERY_S:
                    handle.update(Markdown("".join(parts)))
                    last = now
        except LLMError as exc:
            raise AgnesMagicError(str(exc)) from None
        text = "".join(parts)
        if handle is not None:
            handle.update(Markdown(text or "_(empty answer)_"))
        return text

    def _ask_sql(
        self,
        provider: Any,
        question: str,
        args: Any,
        var: str | None,
        limit: int | None,
        trace: dict[str, Any],
    ) -> None:
        from jupyter_agnes.llm import LLMError

        backend = self.ctx.backend()
        prompt = (
            "You translate questions into DuckDB SQL over these tables (unqualified names):\n"
            f"{schema_prompt(backend, args.with_samples)}\n\n"
            "Write one read-only SELECT statement answering the question, and explain it in "
            f"one or two sentences.\n\nQuestion: {question}"
        )
        handle = display(Markdown("_writing SQL…_"), display_id=True)
        try:
            answer = provider.extract_json(
                prompt,
                SQL_SCHEMA,
                "sql_answer",
                self.ctx.settings.ask_max_tokens,
                trace_context=trace,
            )
        except LLMError as exc:
            raise AgnesMagicError(str(exc)) from None
        sql, explanation = answer.get("sql"), answer.get("explanation")
        if not isinstance(sql, str) or not sql.strip():
            raise AgnesMagicError("The model's answer has no SQL; rephrase the question")
        explanation = explanation if isinstance(explanation, str) else ""
        shown = Markdown(f"```sql\n{sql.strip()}\n```\n\n{explanation}")
        if handle is not None:
            handle.update(shown)
        self.shell.user_ns[ASK_VAR if args.run or not var else var] = {
            "sql": sql,
            "explanation": explanation,
        }
        if args.run:
            if backend.mode == "local":
                self._check_generated(backend, sql)
            run_and_show(self.ctx, sql, var or SQL_VAR, "df", limit)

    @staticmethod
    def _check_generated(backend: Any, sql: str) -> None:
        """Locally there is no server sandbox: allow one read over known tables only."""
        from jupyter_agnes.query import QueryError, check_query

        try:
            check_query(sql, backend.granted_names())
        except QueryError as exc:
            raise AgnesMagicError(f"The generated SQL was not run: {exc}") from None
