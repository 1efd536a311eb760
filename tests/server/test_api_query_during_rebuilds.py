"""8 threads query through the HTTP API of a real `jupyter agnes serve` while 10 rebuilds
run (in a separate CLI process and through POST /agnes/api/sync): zero failed requests,
and every result comes from one consistent snapshot."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import requests

from tests.support.datahelpers import make_extract
from tests.support.server_process import agnes_cli, agnes_server

READERS = 8
REBUILDS = 10
# Both versioned tables are joined in one query next to the sample data's own join,
# so a result mixing two builds shows up as unequal versions or a wrong row count.
CONSISTENCY_SQL = """
    SELECT min(a.v) AS a_min, max(a.v) AS a_max, min(b.v) AS b_min, max(b.v) AS b_max,
           count(*) AS pairs,
           (SELECT count(*) FROM orders o JOIN order_items i USING (order_id)) AS joined,
           (SELECT count(*) FROM order_items) AS items
    FROM ver_a a JOIN ver_b b USING (r)
"""


def version_table(i: int) -> str:
    # every row of version i says i, and there are i + 1 rows: mixing versions shows
    return f"SELECT {i} AS v, range AS r FROM range({i + 1})"


def write_version(data_dir: Path, i: int) -> None:
    """Two sources, so one build must pick up both or neither."""
    make_extract(data_dir, "vera", {"ver_a": version_table(i)})
    make_extract(data_dir, "verb", {"ver_b": version_table(i)})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cli(data_dir: Path, *args: str) -> str:
    return agnes_cli(*args, "--data-dir", str(data_dir)).stdout.strip()


def analyst_pat(url: str, data_dir: Path, admin: dict[str, str]) -> str:
    """A non-admin granted exactly the four tables the readers touch."""
    api = url + "agnes/api/admin/"
    resp = requests.post(
        api + "users", json={"email": "analyst@example.com"}, headers=admin, timeout=30
    )
    assert resp.status_code == 201, resp.text
    resp = requests.post(api + "groups", json={"name": "analysts"}, headers=admin, timeout=30)
    assert resp.status_code == 201, resp.text
    gid = resp.json()["id"]
    resp = requests.post(
        f"{api}groups/{gid}/members",
        json={"email": "analyst@example.com"},
        headers=admin,
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    for table in ("orders", "order_items", "ver_a", "ver_b"):
        body = {"group": "analysts", "resource_type": "table", "resource_id": table}
        resp = requests.post(api + "grants", json=body, headers=admin, timeout=30)
        assert resp.status_code == 201, resp.text
    return cli(data_dir, "token", "create", "--email", "analyst@example.com", "--name", "t")


def rebuild_via_api(url: str, admin: dict[str, str]) -> dict[str, Any]:
    resp = requests.post(url + "agnes/api/sync", headers=admin, timeout=30)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = requests.get(f"{url}agnes/api/sync/{job_id}", headers=admin, timeout=30).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"sync job {job_id} did not finish: {job}")


class Readers:
    """Threads that query and read the catalog until stopped, recording what they saw."""

    def __init__(self, url: str, tokens: list[str], items: int) -> None:
        self.url = url
        self.tokens = tokens
        self.items = items
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failures: list[str] = []
        self.seen: set[int] = set()
        self.queries = 0
        self.threads = [
            threading.Thread(target=self.read, args=(n,), daemon=True) for n in range(READERS)
        ]

    def fail(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)

    def read(self, n: int) -> None:
        http = requests.Session()
        http.headers.update(bearer(self.tokens[n % len(self.tokens)]))
        last = -1
        while not self.stop.is_set():
            try:
                version = self.query_once(http, n)
                if version is not None and version < last:
                    self.fail(f"reader {n} went back from version {last} to {version}")
                last = max(last, version if version is not None else -1)
                if n % 2 == 0:
                    self.catalog_once(http, n)
            except Exception as exc:  # every failure is collected and asserted on
                self.fail(f"reader {n}: {type(exc).__name__}: {exc}")
        http.close()

    def query_once(self, http: requests.Session, n: int) -> int | None:
        resp = http.post(
            self.url + "agnes/api/query",
            json={"sql": CONSISTENCY_SQL, "format": "json"},
            timeout=60,
        )
        if resp.status_code != 200:
            self.fail(f"reader {n}: query HTTP {resp.status_code}: {resp.text[:300]}")
            return None
        ((a_min, a_max, b_min, b_max, pairs, joined, items),) = resp.json()["rows"]
        if not (a_min == a_max == b_min == b_max and pairs == a_min + 1):
            self.fail(
                f"reader {n}: mixed snapshot a={a_min}..{a_max} b={b_min}..{b_max} pairs={pairs}"
            )
            return None
        if not joined == items == self.items:
            self.fail(f"reader {n}: sample join {joined}, items {items}, want {self.items}")
        with self.lock:
            self.queries += 1
            self.seen.add(a_min)
        return a_min

    def catalog_once(self, http: requests.Session, n: int) -> None:
        resp = http.get(self.url + "agnes/api/catalog", timeout=60)
        if resp.status_code != 200:
            self.fail(f"reader {n}: catalog HTTP {resp.status_code}: {resp.text[:300]}")
            return
        rows = {t["name"]: t["rows"] for t in resp.json()["tables"]}
        if rows.get("ver_a") is None or rows.get("ver_a") != rows.get("ver_b"):
            self.fail(f"reader {n}: catalog from two builds: {rows}")

    def wait_for_version(self, version: int, timeout: float = 30) -> None:
        """Block until some reader has seen `version` (a sync point, not a timing check)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.failures:
            with self.lock:
                if version in self.seen:
                    return
            time.sleep(0.02)
        if not self.failures:
            raise AssertionError(f"no reader saw version {version} in {timeout} s")


def test_api_queries_during_rebuilds(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    cli(data_dir, "sample-data", "--rows", "20000", "--no-rebuild")
    admin = bearer(cli(data_dir, "bootstrap", "--email", "root@example.com").splitlines()[-1])
    write_version(data_dir, 0)
    cli(data_dir, "rebuild")

    with agnes_server(data_dir) as server:
        url = server.url
        analyst = analyst_pat(url, data_dir, admin)
        resp = requests.post(
            url + "agnes/api/query",
            headers=admin,
            timeout=30,
            json={"sql": "SELECT count(*) FROM order_items"},
        )
        assert resp.status_code == 200, resp.text
        ((items,),) = resp.json()["rows"]
        assert items > 0

        readers = Readers(url, [admin["Authorization"][7:], analyst], items)
        for t in readers.threads:
            t.start()
        try:
            readers.wait_for_version(0)
            for i in range(1, REBUILDS + 1):
                write_version(data_dir, i)
                if i % 2:  # another process swaps the file under the server
                    out = cli(data_dir, "rebuild")
                    assert "0 problem(s)" in out, out
                else:  # the server rebuilds in its own thread while it serves
                    job = rebuild_via_api(url, admin)
                    assert job["status"] == "done" and job["report"]["problems"] == [], job
                readers.wait_for_version(i)
        finally:
            readers.stop.set()
            for t in readers.threads:
                t.join(60)
        assert not any(t.is_alive() for t in readers.threads)
        assert readers.failures == []
        assert readers.seen == set(range(REBUILDS + 1))
        assert readers.queries >= READERS
        for token in (admin["Authorization"][7:], analyst):
            resp = requests.post(
                url + "agnes/api/query",
                headers=bearer(token),
                timeout=30,
                json={"sql": CONSISTENCY_SQL},
            )
            assert resp.status_code == 200, resp.text
            assert resp.json()["rows"] == [[REBUILDS] * 4 + [REBUILDS + 1, items, items]]
        # the analyst's grants held throughout: an ungranted table is still refused
        resp = requests.post(
            url + "agnes/api/query",
            headers=bearer(analyst),
            timeout=30,
            json={"sql": "SELECT count(*) FROM customers"},
        )
        assert resp.status_code == 404, resp.text
        assert "Traceback" not in server.log()
