"""A `postgres` source run by a real `jupyter agnes serve` with PostHog on: when the
source refuses the credentials, the previous data stays queryable, the job says why in
one line, and the password (or the URI holding it) is nowhere: not in the store file, the
API's answers, the server log, the audit rows or the PostHog events."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.fakes.posthog_server import FakePostHog
from tests.support.pg_server import postgres_server
from tests.support.server_process import agnes_cli, agnes_server, bootstrap_pat

PASSWORD = "Src-s3cret-9191"
NEW_PASSWORD = "Rotated-s3cret-2727"


@pytest.fixture(scope="module")
def pg_uri() -> Iterator[str]:
    """A role `wh` that logs in by password only (the test server trusts everyone else)."""
    with postgres_server() as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        admin = f"postgresql://agnes@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f"CREATE ROLE wh LOGIN PASSWORD '{PASSWORD}'")
            con.execute("CREATE TABLE public.orders AS SELECT g AS id, g * 2 AS amount "
                        "FROM generate_series(1, 25) g")
            con.execute("GRANT SELECT ON public.orders TO wh")
            (hba,) = con.execute("SHOW hba_file").fetchone()  # type: ignore[misc]
            rules = Path(hba).read_text()
            Path(hba).write_text(f"host all wh 127.0.0.1/32 scram-sha-256\n{rules}")
            con.execute("SELECT pg_reload_conf()")
        yield f"postgresql://wh:{PASSWORD}@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f"ALTER ROLE wh PASSWORD '{PASSWORD}'")


def call(url: str, pat: str, method: str = "GET", body: Any = None) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {pat}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def sync(base: str, pat: str) -> dict[str, Any]:
    status, text = call(base + "agnes/api/sync", pat, "POST", {"source": "warehouse"})
    assert status == 202, text
    job_id = json.loads(text)["id"]
    deadline = time.monotonic() + 120
    while True:
        status, text = call(base + f"agnes/api/sync/{job_id}", pat)
        job = json.loads(text)
        if job["status"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.3)


def rows(base: str, pat: str) -> int:
    status, text = call(base + "agnes/api/query", pat, "POST",
                        {"sql": "SELECT count(*) AS n FROM orders"})
    assert status == 200, text
    return json.loads(text)["rows"][0][0]


def test_refused_credentials_keep_the_data_and_leak_nowhere(tmp_path, pg_uri):
    data_dir = tmp_path / "data"
    pat = bootstrap_pat(data_dir)
    d = ["--data-dir", str(data_dir)]
    agnes_cli("source", "add", "warehouse", "--type", "postgres", "--option",
              "uri_env=WAREHOUSE_URI", "--tables", "public.orders", *d)
    secrets = [PASSWORD, pg_uri]
    seen: list[str] = []
    with FakePostHog() as ph:
        env = {**os.environ, "WAREHOUSE_URI": pg_uri, "POSTHOG_API_KEY": "phc_sources",
               "POSTHOG_HOST": ph.url, "AGNES_SCHEDULER_POLL_S": "0"}
        with agnes_server(data_dir, env=env) as server:
            base = server.url
            assert sync(base, pat)["status"] == "done"
            assert rows(base, pat) == 25
            admin = pg_uri.replace(f"wh:{PASSWORD}", "agnes")
            with psycopg.connect(admin, autocommit=True) as con:
                con.execute(f"ALTER ROLE wh PASSWORD '{NEW_PASSWORD}'")  # rotated upstream
            job = sync(base, pat)
            assert job["status"] == "failed", job
            assert "credentials" in job["error"] and "\n" not in job["error"], job
            assert rows(base, pat) == 25  # the previous extract stays live
            for path in ("agnes/api/admin/sources", "agnes/api/admin/sources/warehouse",
                         f"agnes/api/sync/{job['id']}", "agnes/api/admin/audit?limit=500",
                         "agnes/api/catalog"):
                status, text = call(base + path, pat)
                assert status == 200, (path, text)
                seen.append(text)
            listing = json.loads(seen[0])["sources"][0]
            assert listing["last_status"] == "failed" and "credentials" in listing["last_error"]
            assert listing["options"] == {"uri_env": "WAREHOUSE_URI"}
            listed = agnes_cli("source", "list", *d).stdout
            assert "credentials" in listed
            seen.append(listed)
        seen.append(server.log())
        time.sleep(1)  # the server's last PostHog batch
        seen.append(ph.everything())
    for path in data_dir.rglob("*"):
        if path.is_file():
            seen.append(path.read_bytes().decode("latin-1"))
    for text in seen:
        for secret in secrets:
            assert secret not in text
