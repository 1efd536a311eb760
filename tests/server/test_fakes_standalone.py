"""The fakes run as their own processes, as kernels and `jupyter agnes serve` use them
(the other tests start them in-process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def test_fake_runs_as_a_separate_process(tmp_path) -> None:
    script = ROOT / "tests" / "fakes" / "google_server.py"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            "--port",
            "0",
            "--user",
            "ann@acme.com",
            "--groups",
            "agnes-a@acme.com",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(proc.stdout.readline())
        base = f"http://127.0.0.1:{port}"
        requests.post(base + "/_fake/config", json={"modes": {"directory": "500"}}, timeout=5)
        state = requests.get(base + "/_fake/state", timeout=5).json()
        assert state["modes"] == {"directory": "500"} and state["users"] == ["ann@acme.com"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_fake_server_runs_standalone_for_kernels() -> None:
    env = {**os.environ, "FAKE_LLM_SQL": "SELECT 7 AS seven", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.llm_server", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(proc.stdout.readline())
        env2 = {**env, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}", "ANTHROPIC_API_KEY": "k"}
        code = (
            "from jupyter_agnes.llm import get_provider\n"
            "s={'type':'object','properties':{'sql':{'type':'string'},"
            "'explanation':{'type':'string'}},'required':['sql','explanation']}\n"
            "print(get_provider().extract_json('q', s, 'sql')['sql'])\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env2,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip() == "SELECT 7 AS seven"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
