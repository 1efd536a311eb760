"""Run a walkthrough of the docs as written: the shell blocks between
`<!-- walkthrough: NAME` and `<!-- /walkthrough -->`, with their expected outputs.

The rules (also stated in the walkthrough's own comment in the doc):
- every ```bash block runs, in order, in a fresh `bash -euo pipefail`, after the first
  block (the settings), in which the caller may set some `NAME=value` lines' values;
- a ```text block right after a ```bash block is its expected output: each of its lines
  must match a line of the output, in order, where `…` matches anything;
- an HTML comment `test: skip` before a block: not run; `test: background`: started in
  the background.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
FENCE = re.compile(r"^```(\w*)\s*$")
STEP_TITLE = re.compile(r"^\*\*(\d+)\. ([^*]+?)\.?\*\*")
MARK = re.compile(r"^<!-- test: (skip|background) -->$")
SETTING = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


@dataclass
class Block:
    step: str  # the step's title, e.g. "4. Start the hub"
    code: str
    mode: str = "run"  # run, skip or background
    expected: list[str] = field(default_factory=list)


def walkthrough(name: str, doc: Path = DEPLOY_DOC) -> list[Block]:
    """The blocks of walkthrough `name` in `doc`, in order."""
    text = doc.read_text()
    start = text.index(f"<!-- walkthrough: {name}")
    body = text[text.index("-->", start) + 3 : text.index("<!-- /walkthrough -->", start)]
    blocks: list[Block] = []
    step, mode, lang, lines = "", "run", None, []
    for line in body.splitlines():
        if lang is not None:  # inside a fence
            if line.startswith("```"):
                if lang == "bash":
                    blocks.append(Block(step, "\n".join(lines) + "\n", mode))
                    mode = "run"
                elif lang == "text" and blocks and not blocks[-1].expected:
                    blocks[-1].expected = lines
                lang, lines = None, []
            else:
                lines.append(line)
        elif fence := FENCE.match(line):
            lang = fence.group(1)
        elif marked := MARK.match(line.strip()):
            mode = marked.group(1)
        elif title := STEP_TITLE.match(line):
            step = f"{title.group(1)}. {title.group(2)}"
    return blocks


def with_settings(block: Block, values: dict[str, str]) -> str:
    """The settings block with the values of the `NAME=` lines named in `values` replaced;
    every name in `values` must be set there."""
    out, seen = [], set()
    for line in block.code.splitlines():
        setting = SETTING.match(line)
        if setting and setting.group(1) in values:
            seen.add(setting.group(1))
            line = f"{setting.group(1)}={values[setting.group(1)]}"
        out.append(line)
    missing = set(values) - seen
    assert not missing, f"the settings block sets no {sorted(missing)}:\n{block.code}"
    return "\n".join(out) + "\n"


def _line_pattern(expected: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in expected.strip().split("…")))


def unmatched_expectations(expected: list[str], output: str) -> list[str]:
    """The expected lines (from the first that fails) not matched, in order, by `output`."""
    lines = output.splitlines()
    at = 0
    for i, want in enumerate(line for line in expected if line.strip()):
        pattern = _line_pattern(want)
        while at < len(lines) and not pattern.fullmatch(lines[at].strip()):
            at += 1
        if at == len(lines):
            return [line for line in expected if line.strip()][i:]
        at += 1
    return []


def bash(settings: str, block: Block, cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run `block` after `settings`; its output, or AssertionError with the step's output."""
    script = settings + block.code
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"step {block.step!r} exited {done.returncode}:\n{output}"
    missing = unmatched_expectations(block.expected, done.stdout)
    assert not missing, f"step {block.step!r}: output lacks {missing}:\n{output}"
    return done.stdout


def bash_background(
    settings: str, block: Block, cwd: Path, env: dict[str, str], log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Start `block` after `settings` in its own session, output to `log`."""
    return subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", settings + block.code],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
