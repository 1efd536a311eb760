"""An unexpected CLI failure is one line on stderr and one `$exception` (component=cli),
flushed to PostHog before the process exits."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.fakes.posthog_server import FakePostHog


def test_cli_failure_reaches_posthog_before_exit(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with FakePostHog() as ph:
        env = {**os.environ, "POSTHOG_API_KEY": "phc_cli_test", "POSTHOG_HOST": ph.url}
        result = subprocess.run(
            [sys.executable, "-m", "jupyter_agnes.cli", "sample-data", "--data-dir", str(not_a_dir)],
            capture_output=True, text=True, timeout=120, env=env,
        )
        assert result.returncode == 1
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
        assert "Traceback" not in result.stderr
        # The process has exited: whatever arrived was flushed before exit.
        events = ph.named("$exception")
    assert len(events) == 1, events
    props = events[0]["properties"]
    assert props["component"] == "cli"


def test_cli_sends_nothing_without_a_key(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with FakePostHog() as ph:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTHOG_")}
        env["POSTHOG_HOST"] = ph.url
        result = subprocess.run(
            [sys.executable, "-m", "jupyter_agnes.cli", "sample-data", "--data-dir", str(not_a_dir)],
            capture_output=True, text=True, timeout=120, env=env,
        )
        assert result.returncode == 1
        assert ph.requests == []
