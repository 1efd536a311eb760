"""What `%%ask` sends to the model, built once for the kernel's own provider and for the
server's `POST /agnes/api/ask`: the system prompts, the text-to-SQL prompt over the
tables a caller may read, and the check of the model's SQL answer."""

from __future__ import annotations

import json
from typing import Any, Protocol

from .errors import FormatError

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
SQL_SCHEMA_NAME = "sql_answer"
SYSTEM = {
    "markdown": "You are Agnes, a data assistant inside a Jupyter notebook. Answer in Markdown.",
    "code": "You are Agnes, a data assistant inside a Jupyter notebook. Answer with Python "
    "code only, in a single ```python fenced block, with no prose outside it.",
    "json": "You are Agnes, a data assistant. Answer with a single JSON object and nothing else.",
}
SAMPLE_ROWS = 3
MAX_TABLES = 200


class TableSource(Protocol):
    """The tables a caller may read: a magics backend, or the server's catalog for one
    principal. Both only ever list and describe granted tables."""

    def tables(self) -> list[dict[str, Any]]: ...

    def describe(self, name: str, sample_rows: int = 5) -> dict[str, Any]: ...


def chat_messages(fmt: str, prompt: str) -> list[dict[str, str]]:
    """The conversation for a markdown, code or json answer."""
    return [{"role": "system", "content": SYSTEM[fmt]}, {"role": "user", "content": prompt}]


def _column(c: dict[str, Any]) -> str:
    """`name type`, plus the source's column comment as a SQL comment."""
    comment = str(c.get("comment") or "").replace("*/", "* /").replace("\n", " ")[:300]
    return f"{c.get('name')} {c.get('type')}" + (f" /* {comment} */" if comment else "")


def schema_prompt(source: TableSource, with_samples: bool) -> str:
    """Table schemas (and, only if asked, a few sample rows) for the model."""
    lines: list[str] = []
    for t in source.tables()[:MAX_TABLES]:
        cols = ", ".join(_column(c) for c in t.get("columns") or [])
        desc = f" -- {t['description']}" if t.get("description") else ""
        lines.append(f"TABLE {t.get('name')} ({cols}){desc}")
        if with_samples:
            sample = source.describe(str(t.get("name")), SAMPLE_ROWS).get("sample") or {}
            lines.append(f"  sample columns: {json.dumps(sample.get('columns') or [])}")
            for row in sample.get("rows") or []:
                lines.append(f"  sample row: {json.dumps(row, default=str)}")
    return "\n".join(lines) or "(no tables)"


def sql_prompt(question: str, source: TableSource, with_samples: bool) -> str:
    """The text-to-SQL prompt: the caller's tables, then the question."""
    return (
        "You translate questions into DuckDB SQL over these tables (unqualified names):\n"
        f"{schema_prompt(source, with_samples)}\n\n"
        "Write one read-only SELECT statement answering the question, and explain it in "
        f"one or two sentences.\n\nQuestion: {question}"
    )


def sql_answer(answer: Any) -> dict[str, str]:
    """{"sql", "explanation"} from the model's structured answer; FormatError without SQL."""
    sql = answer.get("sql") if isinstance(answer, dict) else None
    if not isinstance(sql, str) or not sql.strip():
        raise FormatError("The model's answer has no SQL; rephrase the question")
    explanation = answer.get("explanation") if isinstance(answer, dict) else ""
    return {"sql": sql, "explanation": explanation if isinstance(explanation, str) else ""}
