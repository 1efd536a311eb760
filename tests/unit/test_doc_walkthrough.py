"""The reader of docs/deploy.md's walkthroughs (tests/support/doc_walkthrough.py), which the
hub tests run: what counts as a step, a skipped or background block, and expected output."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.doc_walkthrough import unmatched_expectations, walkthrough, with_settings

DOC = """
Intro, not part of it.
```bash
echo never
```
<!-- walkthrough: demo
rules
-->
**1. Install.** Not run.

<!-- test: skip -->
```bash
pip install x
```
**2. Settings**
```bash
D=/srv/agnes
PORT=8000
```
**3. Serve.**
<!-- test: background -->
```bash
serve --port "$PORT"
```
```bash
echo "$D"
```
```text
/tmp/…
```
<!-- /walkthrough -->
"""


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    path = tmp_path / "doc.md"
    path.write_text(DOC)
    return path


def test_blocks_steps_modes_and_expected_output(doc: Path) -> None:
    blocks = walkthrough("demo", doc)
    assert [(b.step, b.mode) for b in blocks] == [
        ("1. Install", "skip"), ("2. Settings", "run"), ("3. Serve", "background"),
        ("3. Serve", "run"),
    ]
    assert blocks[3].expected == ["/tmp/…"] and blocks[2].expected == []


def test_settings_values_are_replaced_and_must_exist(doc: Path) -> None:
    settings = walkthrough("demo", doc)[1]
    assert with_settings(settings, {"D": "/tmp/x"}) == "D=/tmp/x\nPORT=8000\n"
    with pytest.raises(AssertionError, match="sets no"):
        with_settings(settings, {"EMAIL": "a@example.com"})


def test_expected_lines_match_in_order_with_ellipsis() -> None:
    out = "noise\nGranted lab:* to analysts\nmore\n{\"status\": \"ok\", \"version\": \"1\"}\n"
    assert unmatched_expectations(["Granted lab:* to …", '{"status": "ok", …}'], out) == []
    assert unmatched_expectations(['{"status": "ok", …}', "Granted …"], out) == ["Granted …"]
    assert unmatched_expectations(["Granted lab:*"], out) == ["Granted lab:*"]  # whole lines


def test_the_deploy_doc_has_both_walkthroughs() -> None:
    hub = walkthrough("hub")
    assert hub[0].mode == "skip" and [b.mode for b in hub].count("background") == 1
    assert all(b.expected for b in hub[5:])  # from the grants on, every step checks its output
    (own,) = walkthrough("own-config")
    assert own.mode == "background"
