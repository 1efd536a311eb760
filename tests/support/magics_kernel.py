"""Drive a real `agnes` kernel (the installed kernelspec) through jupyter_client."""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

# Anything that could leak in from the developer's shell and change what the magics do.
SCRUBBED = (
    "AGNES_DATA_DIR",
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "AGNES_LLM_API_KEY",
    "AGNES_LLM_PROVIDER",
    "AGNES_LLM_MODEL",
    "AGNES_LLM_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "OPENAI_BASE_URL",
    "AGNES_TOKEN",
    "POSTHOG_API_KEY",
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def kernel_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    # An empty jupyter data dir: the default Agnes data dir must not exist by accident.
    env["JUPYTER_DATA_DIR"] = str(tmp / "jupyter-data")
    env.update(extra)
    return env


@dataclass
class Run:
    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.reply["content"]["status"]

    def _data(self, mime: str) -> list[str]:
        out = []
        for m in self.messages:
            if m["msg_type"] in ("display_data", "update_display_data", "execute_result"):
                value = m["content"]["data"].get(mime)
                if value is not None:
                    out.append(value)
        return out

    @property
    def html(self) -> str:
        return "\n".join(self._data("text/html"))

    @property
    def markdown(self) -> list[str]:
        return self._data("text/markdown")

    @property
    def stdout(self) -> str:
        return "".join(
            m["content"]["text"]
            for m in self.messages
            if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
        )

    @property
    def error(self) -> tuple[str, str, list[str]]:
        content = self.reply["content"]
        return (
            content.get("ename", ""),
            content.get("evalue", ""),
            [_ANSI.sub("", line) for line in content.get("traceback", [])],
        )

    @property
    def payload(self) -> list[dict[str, Any]]:
        return self.reply["content"].get("payload", [])

    def everything(self) -> str:
        """Every output and the reply as text, to check what must never appear."""
        return repr(self.reply) + repr(self.messages)


class AgnesKernel:
    def __init__(self, env: dict[str, str], cwd: Path, kernel_name: str = "agnes") -> None:
        # Named like jupyter-server names them, so the kernel can tell its own id.
        self.kernel_id = str(uuid.uuid4())
        connection_file = cwd / f"kernel-{self.kernel_id}.json"
        self.km = KernelManager(kernel_name=kernel_name, connection_file=str(connection_file))
        self.km.start_kernel(env=env, cwd=str(cwd))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 60) -> Run:
        messages: list[dict[str, Any]] = []
        reply = self.kc.execute_interactive(
            code, output_hook=messages.append, timeout=timeout, allow_stdin=False
        )
        return Run(reply, messages)

    def ok(self, code: str, timeout: float = 60) -> Run:
        run = self.run(code, timeout)
        assert run.status == "ok", run.error
        return run

    def fails(self, code: str, timeout: float = 60) -> tuple[str, str]:
        run = self.run(code, timeout)
        assert run.status == "error", f"expected an error from {code!r}"
        ename, evalue, _ = run.error
        return ename, evalue

    def value(self, expression: str) -> str:
        """`print((expression))` in the kernel, as text (a tuple prints as its repr)."""
        return self.ok(f"print(({expression}))").stdout.strip()

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def __enter__(self) -> AgnesKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
