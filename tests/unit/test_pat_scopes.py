"""PAT scopes in the core and the CLI: validation, defaults, the bootstrap token, the
store migration that gives tokens made before scopes every scope (real SQLite files)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jupyter_agnes.auth.pat import DEFAULT_SCOPES, hash_token, validate_scopes
from jupyter_agnes.auth.principal import ALL_SCOPES
from jupyter_agnes.auth.service import AuthService
from jupyter_agnes.cli import main
from jupyter_agnes.cli.serve import seed_admin
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.engine import open_store
from tests.support.datahelpers import make_extract
from tests.support.migrations import head_revision, sqlite_store_at

OLD_PAT = "agnes_pat_" + "A" * 43


def test_scopes_are_a_short_list_of_distinct_known_names():
    assert validate_scopes(None) == DEFAULT_SCOPES == ("data",)
    assert validate_scopes(["admin", "data"]) == ("data", "admin")  # stored in one order
    for bad in ("data", "data,lab", [], ["data", "data"], ["Data"], [["data"]], ["data"] * 4):
        with pytest.raises(ValueError):
            validate_scopes(bad)


def run_cli(capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main([*args, "--data-dir", str(data_dir)])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def scopes_of(data_dir: Path, token: str) -> list[str]:
    store = open_store(data_dir)
    try:
        return list(AuthService(store).authenticate_bearer(token, "1.2.3.4").effective_scopes)
    finally:
        store.close()


def test_bootstrap_carries_every_scope(tmp_path, capsys):
    data_dir = resolve_data_dir(tmp_path / "data")
    code, out = run_cli(capsys, data_dir, "bootstrap", "--email", "root@example.com")
    assert code == 0
    assert scopes_of(data_dir, out.splitlines()[-1]) == ["data", "lab", "admin"]


# Apart from bootstrap's: `make mutation` runs the operator's-token mutants against that
# one CLI call, not these eight.
def test_cli_tokens_default_to_data_and_carry_only_the_scopes_held(tmp_path, capsys):
    data_dir = resolve_data_dir(tmp_path / "data")
    open_store(data_dir).close()  # what `bootstrap` would have made
    run_cli(capsys, data_dir, "user", "add", "ann@example.com")
    create = ("token", "create", "--email", "ann@example.com", "--name")
    code, out = run_cli(capsys, data_dir, *create, "ci")
    assert code == 0 and scopes_of(data_dir, out.strip()) == ["data"]
    code, out = run_cli(capsys, data_dir, *create, "nb", "--scope", "data,lab")
    assert (code, out) == (
        1,
        "error: Scope 'lab' is beyond ann@example.com's rights: it needs a lab grant (or Admin)\n",
    )
    code, out = run_cli(capsys, data_dir, *create, "x", "--scope", "data,root")
    assert (code, out) == (1, "error: Unknown scope 'root'; known scopes: data, lab, admin\n")
    run_cli(capsys, data_dir, "grant", "Analysts", "lab", "*")
    run_cli(capsys, data_dir, "group", "add-member", "Analysts", "ann@example.com")
    code, out = run_cli(capsys, data_dir, *create, "nb", "--scope", "lab, data")
    assert code == 0 and scopes_of(data_dir, out.strip()) == ["data", "lab"]

    code, out = run_cli(capsys, data_dir, "token", "list", "--email", "ann@example.com")
    assert code == 0
    assert sorted(line.split("  ")[1:4:2] for line in out.splitlines()) == [
        ["ci", "scopes data"],
        ["nb", "scopes data,lab"],
    ]


def test_quickstarts_token_carries_every_scope(tmp_path):
    data_dir = resolve_data_dir(tmp_path / "data")
    make_extract(data_dir, "sample", {"orders": "SELECT 1 AS id"})  # no 1 M-row generation
    token, _ = seed_admin(data_dir, "me@example.com")
    assert scopes_of(data_dir, token) == ["data", "lab", "admin"]


def test_tokens_made_before_scopes_keep_every_scope(tmp_path):
    """0004 -> 0005 on a real SQLite file holding a token: it keeps working for Lab and
    admin (as before the upgrade), bounded by its owner's rights; new rows get `data`."""


    data_dir, engine, cfg = sqlite_store_at(tmp_path, "0004")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "insert into users (id, email, name, active, is_service, created_at) "
            "values (7, 'old@example.com', 'Old', 1, 0, '2026-01-01 00:00:00')"
        )
        conn.exec_driver_sql(
            "insert into personal_access_tokens (id, user_id, name, token_hash, prefix,"
            " created_at, expires_at) values ('oldtoken', 7, 'ci', ?, 'agnes_pat_AAAA',"
            " '2026-01-01 00:00:00', '2099-01-01 00:00:00')",
            (hash_token(OLD_PAT),),
        )
    engine.dispose()

    store = open_store(data_dir)
    auth = AuthService(store)
    principal = auth.authenticate_bearer(OLD_PAT, "1.2.3.4")
    assert principal.scopes == ALL_SCOPES
    assert principal.effective_scopes == ("data",)  # the owner holds no more yet
    with store.write() as s:
        user = directory.get_user_by_email(s, "old@example.com")
        admin = directory.get_group(s, directory.ADMIN_GROUP)
        directory.add_member(s, user, admin, "admin", "test")
    promoted = auth.authenticate_bearer(OLD_PAT, "1.2.3.4")
    assert promoted.effective_scopes == ("data", "lab", "admin")
    assert promoted.lab_access and promoted.admin_access
    assert [t["scopes"] for t in auth.list_tokens(7)] == [["data", "lab", "admin"]]
    store.close()

    conn = sqlite3.connect(data_dir / "agnes.sqlite")
    assert conn.execute("select version_num from alembic_version").fetchone()[0] == head_revision()
    conn.execute(
        "insert into personal_access_tokens (id, user_id, name, token_hash, prefix,"
        " created_at, expires_at) values ('new', 7, 'n', 'h', 'p', '2026-01-01', '2099-01-01')"
    )
    assert conn.execute("select scopes from personal_access_tokens where id='new'").fetchone() == (
        "data",
    )
    conn.close()
