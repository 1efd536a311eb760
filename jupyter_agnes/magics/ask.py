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

from jupyter_agnes.llm.ask_prompts import (
    ASK_FORMATS,
    SQL_SCHEMA,
    SQL_SCHEMA_NAME,
    chat_messages,
    sql_answer,
    sql_prompt,
)
from jupyter_agnes.magics.context import AgnesContext
from jupyter_agnes.magics.errors import AgnesMagicError
from jupyter_agnes.magics.options import MagicArgumentParser, check_limit, check_var
from jupyter_agnes.magics.params import fill_prompt
from jupyter_agnes.magics.sql import DEFAULT_VAR as SQL_VAR
from jupyter_agnes.magics.sql import run_and_show

ASK_VAR = "_ask"
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
        In a hub's per-user server the Agnes service asks its LLM (the key stays there).
        """
        args = self.parser.parse_line(line)
        var = check_var(args.var, "%%ask") if args.var else None
        limit = check_limit(args.limit, "%%ask") if args.limit is not None else None
        if args.run and args.format != "sql":
            raise AgnesMagicError("%%ask: --run works with --format sql only")
        prompt = fill_prompt(cell, self.shell.user_ns).strip()
        if not prompt:
            raise AgnesMagicError("%%ask: the cell is empty; write the question below %%ask")
        # `%agnes connect` keeps the kernel's own provider; the hub's service has its own.
        service = self.ctx.service() if self.ctx.remote is None else None
        provider = None if service is not None else self._provider(args.model)
        trace = self.ctx.trace_context("%%ask")
        if args.format == "sql":
            handle = display(Markdown("_writing SQL…_"), display_id=True)
            if service is not None:
                answer = service.ask_sql(self._service_body(prompt, args, trace))
            else:
                answer = self._local_sql(provider, prompt, args.with_samples, trace)
            self._show_sql(answer, handle, args, var, limit)
            return
        if service is not None:
            chunks = service.ask_stream(self._service_body(prompt, args, trace))
        else:
            messages = chat_messages(args.format, prompt)
            max_tokens = self.ctx.settings.ask_max_tokens
            chunks = provider.complete(messages, max_tokens, stream=True, trace_context=trace)
        text = self._stream(chunks)
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

    def _service_body(self, prompt: str, args: Any, trace: dict[str, Any]) -> dict[str, Any]:
        """What `POST agnes/api/ask` takes; the service traces with this kernel's context."""
        body: dict[str, Any] = {
            "prompt": prompt,
            "format": args.format,
            "with_samples": bool(args.with_samples),
            "max_tokens": self.ctx.settings.ask_max_tokens,
            "context": trace,
        }
        if args.model:
            body["model"] = args.model
        return body

    def _stream(self, chunks: Any) -> str:
        """Show the answer as it arrives, in one display that is updated in place."""
        from jupyter_agnes.llm import LLMError

        handle = display(Markdown("_…_"), display_id=True)
        parts: list[str] = []
        last = 0.0
        try:
            for chunk in chunks:
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

    def _local_sql(
        self, provider: Any, question: str, with_samples: bool, trace: dict[str, Any]
    ) -> dict[str, str]:
        from jupyter_agnes.llm import LLMError

        prompt = sql_prompt(question, self.ctx.backend(), with_samples)
        try:
            answer = provider.extract_json(
                prompt,
                SQL_SCHEMA,
                SQL_SCHEMA_NAME,
                self.ctx.settings.ask_max_tokens,
                trace_context=trace,
            )
            return sql_answer(answer)
        except LLMError as exc:
            raise AgnesMagicError(str(exc)) from None

    def _show_sql(
        self, answer: dict[str, Any], handle: Any, args: Any, var: str | None, limit: int | None
    ) -> None:
        sql, explanation = answer["sql"], answer.get("explanation") or ""
        if handle is not None:
            handle.update(Markdown(f"```sql\n{sql.strip()}\n```\n\n{explanation}"))
        self.shell.user_ns[ASK_VAR if args.run or not var else var] = {
            "sql": sql,
            "explanation": explanation,
        }
        if args.run:
            backend = self.ctx.backend()
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
