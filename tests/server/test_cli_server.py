"""The CLI against a real `jupyter agnes serve` process sharing its data dir."""

from __future__ import annotations

import pytest
import requests

from tests.support.server_process import agnes_cli, agnes_server, free_port


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_cli_and_server_share_a_data_dir(tmp_path):
    data_dir = tmp_path / "data"
    with agnes_server(data_dir) as server:
        boot = agnes_cli("bootstrap", "--email", "Root@Example.com", "--data-dir", str(data_dir))
        admin_pat = boot.stdout.strip().splitlines()[-1]
        assert admin_pat.startswith("agnes_pat_")
        me = requests.get(server.url + "agnes/api/me", headers=bearer(admin_pat), timeout=10)
        assert me.json()["email"] == "root@example.com" and me.json()["is_admin"]

        again = agnes_cli(
            "bootstrap", "--email", "x@example.com", "--data-dir", str(data_dir), check=False
        )
        assert again.returncode == 1
        assert again.stderr.startswith("error: An admin already exists")
        assert "Traceback" not in again.stderr and len(again.stderr.splitlines()) == 1

        agnes_cli("user", "add", "analyst@example.com", "--data-dir", str(data_dir))
        created = agnes_cli(
            "token",
            "create",
            "--email",
            "analyst@example.com",
            "--name",
            "ci",
            "--expires-in-days",
            "3",
            "--data-dir",
            str(data_dir),
        )
        pat = created.stdout.strip()
        assert created.stdout.count("\n") == 1 and pat.startswith("agnes_pat_")
        resp = requests.get(server.url + "agnes/api/tokens", headers=bearer(pat), timeout=10)
        token_id = resp.json()["tokens"][0]["id"]

        # revocation in another process takes effect on the very next request
        agnes_cli("token", "revoke", token_id, "--data-dir", str(data_dir))
        resp = requests.get(server.url + "agnes/api/me", headers=bearer(pat), timeout=10)
        assert resp.status_code == 401 and resp.json()["message"] == "Token revoked"

        pat2 = agnes_cli(
            "token",
            "create",
            "--email",
            "analyst@example.com",
            "--name",
            "b",
            "--data-dir",
            str(data_dir),
        ).stdout.strip()
        assert requests.get(server.url + "agnes/api/me", headers=bearer(pat2), timeout=10).ok
        agnes_cli("user", "deactivate", "analyst@example.com", "--data-dir", str(data_dir))
        resp = requests.get(server.url + "agnes/api/me", headers=bearer(pat2), timeout=10)
        assert resp.status_code == 401 and resp.json()["message"] == "Account deactivated"

        link = agnes_cli(
            "login-link", "--email", "root@example.com", "--data-dir", str(data_dir)
        ).stdout.strip()
        assert link.startswith(server.url + "agnes/auth/link?code=")
        browser = requests.Session()
        landed = browser.get(link, timeout=30)
        # /lab, which opens the user's own workspace (test_lab_isolation)
        assert landed.url.startswith(server.url + "lab/workspaces/agnes-user-")
        assert "code=" not in landed.url
        assert landed.status_code == 200
        assert browser.get(server.url + "agnes/api/me", timeout=10).json()["auth"] == "session"
        reuse = requests.get(link, timeout=10, allow_redirects=False)
        assert "error=link_invalid" in reuse.headers["Location"]
        assert "agnes_pat_" not in server.log() and link.split("code=")[1] not in server.log()
        assert agnes_cli(
            "login-link", "--email", "root@example.com", "--data-dir", str(data_dir)
        ).stderr == ""
    # server.json still names the stopped server: the link is printed, with a note
    gone = agnes_cli("login-link", "--email", "root@example.com", "--data-dir", str(data_dir))
    assert gone.stdout.startswith(server.url + "agnes/auth/link?code=")
    assert gone.stderr.startswith(f"note: no server answers at {server.url}")


def test_cli_errors_are_one_line(tmp_path):
    data_dir = str(tmp_path / "d")
    agnes_cli("bootstrap", "--email", "root@example.com", "--data-dir", data_dir)
    cases = [
        ("token", "revoke", "nope", "--data-dir", data_dir),
        ("token", "create", "--email", "ghost@example.com", "--name", "x", "--data-dir", data_dir),
        ("user", "deactivate", "not-an-email", "--data-dir", data_dir),
        ("login-link", "--email", "ghost@example.com", "--data-dir", data_dir),
        ("revoke-grant", "Nobody", "lab", "*", "--data-dir", data_dir),
    ]
    for args in cases:
        result = agnes_cli(*args, check=False)
        assert result.returncode != 0, args
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1, (
            args,
            result.stderr,
        )
    agnes_cli("user", "add", "t@example.com", "--data-dir", data_dir)
    bad_days = agnes_cli(
        "token",
        "create",
        "--email",
        "t@example.com",
        "--name",
        "x",
        "--expires-in-days",
        "9999",
        "--data-dir",
        data_dir,
        check=False,
    )
    assert bad_days.returncode == 1 and "at most 365" in bad_days.stderr


# `--ip='*'` reaches the extension as "" (jupyter's spelling of every interface).
@pytest.mark.parametrize("ip", ["0.0.0.0", "*", "::"])
def test_dev_mode_refuses_non_loopback(tmp_path, ip):
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter_agnes.cli",
            "serve",
            "--data-dir",
            str(tmp_path / "d"),
            "--ip",
            ip,
            "--port",
            str(free_port()),
        ],
        env={**__import__("os").environ, "LOCAL_DEV_MODE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "refusing to bind" in proc.stdout + proc.stderr


def test_dev_mode_on_loopback_signs_in_everyone(tmp_path):
    with agnes_server(tmp_path / "d", env={"LOCAL_DEV_MODE": "1"}) as server:
        me = requests.get(server.url + "agnes/api/me", timeout=10).json()
        assert me["email"] == "dev@localhost" and me["auth"] == "dev" and me["is_admin"]
        assert "LOCAL_DEV_MODE=1" in server.log()


def _serve_exits(data_dir, env=None):
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "jupyter_agnes.cli", "serve", "--data-dir", str(data_dir),
         "--port", str(free_port())],
        env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=90,
    )


def test_short_jwt_secret_refuses_to_start(tmp_path):
    proc = _serve_exits(tmp_path / "d", {"AGNES_JWT_SECRET": "too-short"})
    assert proc.returncode != 0
    assert "Agnes cannot start: AGNES_JWT_SECRET must be at least 32" in proc.stdout + proc.stderr


def test_newer_store_schema_refuses_to_start(tmp_path):
    import sqlite3

    data_dir = tmp_path / "d"
    agnes_cli("bootstrap", "--email", "x@example.com", "--data-dir", str(data_dir))
    conn = sqlite3.connect(data_dir / "agnes.sqlite")
    conn.execute("update alembic_version set version_num='9999_future'")
    conn.commit()
    conn.close()
    proc = _serve_exits(data_dir)
    assert proc.returncode != 0
    assert "Agnes cannot start" in proc.stdout + proc.stderr
    assert "newer than this version" in proc.stdout + proc.stderr


def test_cli_guards_and_usage_errors(tmp_path):
    data_dir = str(tmp_path / "d")
    agnes_cli("bootstrap", "--email", "solo@example.com", "--data-dir", data_dir)
    last = agnes_cli("user", "deactivate", "solo@example.com", "--data-dir", data_dir, check=False)
    assert last.returncode == 1
    assert last.stderr == "error: Cannot remove the last human admin\n"
    usage = agnes_cli("token", "create", "--email", "x@example.com", "--name", "n",
                      "--expires-in-days", "abc", "--data-dir", data_dir, check=False)
    assert usage.returncode == 2 and len(usage.stderr.splitlines()) == 1
    assert usage.stderr.startswith("error: argument --expires-in-days: invalid int value")
    assert "--help" in usage.stderr


def test_cli_will_not_touch_google_managed_memberships(tmp_path):
    from jupyter_agnes.paths import resolve_data_dir
    from jupyter_agnes.store import directory
    from jupyter_agnes.store.engine import open_store

    data_dir = tmp_path / "d"
    store = open_store(resolve_data_dir(data_dir))
    with store.write() as s:
        user = directory.get_or_create_user(s, "synced@example.com")
        group = directory.get_or_create_group(s, "eng@example.com", "system:google-sync")
        directory.add_member(s, user, group, "google_sync", "system:google-sync")
    store.close()
    result = agnes_cli("group", "add-member", "eng@example.com", "synced@example.com",
                       "--data-dir", str(data_dir), check=False)
    assert result.returncode == 1 and "google_managed_readonly" in result.stderr


def test_a_data_dir_where_workspaces_cannot_live_refuses_to_start(tmp_path):
    data_dir = tmp_path / "d"
    agnes_cli("bootstrap", "--email", "x@example.com", "--data-dir", str(data_dir))
    (data_dir / "lab").write_text("not a folder")  # <data-dir>/lab/workspaces cannot be made
    proc = _serve_exits(data_dir)
    assert proc.returncode != 0
    assert "Agnes cannot start" in proc.stdout + proc.stderr


def test_a_wrong_data_dir_is_refused_not_created(tmp_path):
    """Only `bootstrap` makes a store: every other store command pointed at a directory
    without one (a typo, a forgotten AGNES_DATA_DIR or AGNES_DB_URL) exits non-zero with
    one line, and leaves nothing behind."""
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "no-such-dir"
    commands = (
        ("user", "add", "someone@example.com"),
        ("token", "create", "--email", "someone@example.com", "--name", "x"),
        ("login-link", "--email", "someone@example.com"),
        ("group", "add-member", "ops", "someone@example.com"),
        ("grant", "ops", "lab", "*"),
    )
    runs = [(empty, args) for args in commands] + [(missing, commands[0]), (missing, commands[4])]
    for where, args in runs:
        result = agnes_cli(*args, "--data-dir", str(where), check=False)
        assert result.returncode != 0, args
        assert result.stderr == f"error: no Agnes store at {where} (set AGNES_DB_URL?)\n"
    assert not missing.exists() and list(empty.iterdir()) == []
    # bootstrap creates it; then the same commands work on it.
    data_dir = tmp_path / "data"
    agnes_cli("bootstrap", "--email", "root@example.com", "--data-dir", str(data_dir))
    agnes_cli("user", "add", "someone@example.com", "--data-dir", str(data_dir))
