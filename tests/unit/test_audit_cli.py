"""`jupyter agnes audit`: the filters of the API on the command line, three formats, and
a refusal of a data dir without a store."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import pytest

from jupyter_agnes.cli import main
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store.engine import open_store
from tests.support.audit_log import T0, add_entries, entry, minutes


@pytest.fixture
def data_dir(tmp_path):
    data_dir = resolve_data_dir(tmp_path / "data")
    store = open_store(data_dir)
    now = datetime.now(timezone.utc)
    add_entries(store, [
        *(entry("auth.login", actor="ann@example.com", ts=T0 + minutes(i)) for i in range(5)),
        entry("grant.add", actor="bob@example.com", resource="table:sales", ts=now),
        entry("=2+3", actor="@evil", resource="-x", ts=T0),
    ])
    store.close()
    return data_dir


def run(capsys, data_dir, *argv) -> tuple[int, str, str]:
    code = main(["audit", *argv, "--data-dir", str(data_dir)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_table_is_newest_first_with_filters(data_dir, capsys):
    code, out, _ = run(capsys, data_dir)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["TS", "ACTOR", "ACTION", "RESOURCE", "RESULT"]
    assert "grant.add" in lines[1] and len(lines) == 8
    code, out, _ = run(capsys, data_dir, "--action", "auth.", "--limit", "2")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [
        "2026-11-01T12:04:00", "2026-11-01T12:03:00"]
    code, out, _ = run(capsys, data_dir, "--since", "1h")
    assert len(out.splitlines()) == 2 and "bob@example.com" in out
    code, out, _ = run(capsys, data_dir, "--actor", "nobody@example.com")
    assert out == "No audit entries match.\n"


def test_json_and_csv(data_dir, capsys):
    code, out, _ = run(capsys, data_dir, "--target", "table:*", "--format", "json")
    assert code == 0
    [model] = json.loads(out)
    assert model["action"] == "grant.add" and model["resource"] == "table:sales"
    code, out, _ = run(capsys, data_dir, "--format", "csv", "--limit", "0")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 7
    evil = next(r for r in rows if r["actor"] == "'@evil")
    assert evil["action"] == "'=2+3" and evil["resource"] == "'-x"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "yesterday"], "error: since must be an ISO 8601 time"),
        (["--action", "x" * 65], "error: action is longer than 64 characters"),
        (["--since", "1h", "--until", "2h"], "error: since must be before until"),
    ],
)
def test_bad_filters_are_one_line_errors(data_dir, capsys, argv, message):
    code, _, err = run(capsys, data_dir, *argv)
    assert code == 1 and err.startswith(message) and err.count("\n") == 1


def test_a_data_dir_without_a_store_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, empty)
    assert code == 1 and err == f"error: no Agnes store at {empty.resolve()} (set AGNES_DB_URL?)\n"
    assert list(empty.iterdir()) == []
