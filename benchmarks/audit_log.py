"""The audit log with 1 M rows in a real SQLite store: the first page, a filter by actor, a
filter by action prefix and the page 50 pages deep, each read

- through `GET /agnes/api/admin/audit` and the `/agnes/admin/audit` page of a real server
  (`jupyter agnes serve`, an admin PAT, one keep-alive connection);
- in process with `store.audit_read` (keyset pages on migration 0008's indexes);
- side by side, the baseline, in process through the same ORM: OFFSET paging and
  `LIKE 'auth.%'` on a copy of the store with 0008's indexes dropped (the schema before
  it: an index on ts only). "core" is the new read in process, so core vs baseline is the
  store's part; API and page add the server (PAT, JSON or HTML, HTTP).

Usage: .venv/bin/python benchmarks/audit_log.py [--rows 1000000] [--repeat 15]
Targets: first page < 100 ms, filters < 200 ms (API and page).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import common  # noqa: F401  (puts the repo root on sys.path)
from sqlalchemy import select

from jupyter_agnes.store.audit_filters import AuditFilter, Cursor
from jupyter_agnes.store.audit_read import read_page
from jupyter_agnes.store.engine import open_store
from jupyter_agnes.store.models import AuditEntry
from tests.support.server_process import agnes_server, bootstrap_pat

# What a team's log holds: mostly queries, some sign-ins and sessions, few admin changes.
ACTIONS = [
    ("query", 60), ("session.start", 12), ("auth.google.login", 8), ("auth.google.refresh", 3),
    ("token.first_use_new_ip", 5), ("token.create", 3), ("token.revoke", 2),
    ("group.add_member", 3), ("grant.add", 1), ("user.add", 2), ("login_link.create", 1),
]
USERS = 5000
PAGE = 50
DEEP = 50  # pages
ACTOR = "user42@example.com"
START = datetime(2026, 9, 1, tzinfo=timezone.utc)
OLD_INDEXES = ("ix_audit_log_ts_id", "ix_audit_log_actor_ts_id", "ix_audit_log_action_ts_id",
               "ix_audit_log_resource_ts_id")


def fill(db: Path, rows: int) -> None:
    """`rows` entries over 90 days in time order, whole seconds, so some share a ts."""
    rng = random.Random(13)
    names, weights = zip(*ACTIONS, strict=True)
    step = 90 * 86400 / rows
    conn = sqlite3.connect(db)
    sql = ("INSERT INTO audit_log (ts, user_id, actor, action, resource, params, result) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)")
    chunk = 50_000
    for first in range(0, rows, chunk):
        batch = []
        for i in range(first, min(rows, first + chunk)):
            ts = START + timedelta(seconds=int(i * step))
            user = rng.randrange(USERS)
            action = rng.choices(names, weights)[0]
            resource = f"table:shop.orders_{user % 40}" if action == "query" else f"user:{user}"
            batch.append((ts.strftime("%Y-%m-%d %H:%M:%S.%f"), user, f"user{user}@example.com",
                          action, resource, json.dumps({"rows": user % 1000}), "ok"))
        conn.executemany(sql, batch)
        conn.commit()
    conn.close()


def baseline_copy(db: Path, copy_dir: Path) -> None:
    """The store as it was before migration 0008: an index on ts only."""
    copy_dir.mkdir(mode=0o700)
    src, dst = sqlite3.connect(db), sqlite3.connect(copy_dir / "agnes.sqlite")
    src.backup(dst)
    src.close()
    for name in OLD_INDEXES:
        dst.execute(f"DROP INDEX {name}")
    dst.execute("CREATE INDEX ix_audit_log_ts ON audit_log (ts)")
    dst.commit()
    dst.close()


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and worst of `repeat` runs after one warm-up, in ms."""
    fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(runs), max(runs)


FILTERS = {
    "first page": {},
    "actor": {"actor": ACTOR},
    "action prefix auth.": {"action": "auth."},
    f"page {DEEP} deep": {},
}


def baseline(store, case: str, repeat: int) -> tuple[float, float]:
    """What reading without 0008 would be: OFFSET paging and LIKE, through the same ORM."""
    params = FILTERS[case]
    query = select(AuditEntry)
    if "actor" in params:
        query = query.where(AuditEntry.actor == params["actor"])
    if "action" in params:
        query = query.where(AuditEntry.action.like(params["action"] + "%"))
    offset = (DEEP - 1) * PAGE if "deep" in case else 0
    query = query.order_by(AuditEntry.ts.desc(), AuditEntry.id.desc())
    query = query.offset(offset).limit(PAGE + 1)

    def once() -> None:
        with store.read() as s:
            list(s.scalars(query))

    return timed(once, repeat)


def core(store, case: str, deep_cursor, repeat: int) -> tuple[float, float]:
    params = FILTERS[case]
    flt = AuditFilter(actor=params.get("actor"), action_prefix=params.get("action"),
                      limit=PAGE, cursor=deep_cursor if "deep" in case else None)

    def once() -> None:
        with store.read() as s:
            read_page(s, flt)

    return timed(once, repeat)


class Client:
    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, params: dict[str, str]) -> bytes:
        self.conn.request("GET", "/" + path + "?" + urlencode(params), headers=self.headers)
        resp = self.conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{resp.status} from {path}: {body[:200]!r}")
        return body


def deep_cursor(client: Client) -> str:
    cursor = ""
    for _ in range(DEEP - 1):
        params = {"limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
        cursor = json.loads(client.get("agnes/api/admin/audit", params))["next"]
    return cursor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agnes-audit-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        token = bootstrap_pat(data_dir)
        db = data_dir / "agnes.sqlite"
        t0 = time.perf_counter()
        fill(db, args.rows)
        print(f"filled {args.rows:,} audit rows in {time.perf_counter() - t0:.1f} s")
        copy = Path(tmp) / "baseline"
        baseline_copy(db, copy)
        results: dict[str, dict[str, tuple[float, float]]] = {}
        with agnes_server(data_dir, root_dir=Path(tmp)) as server:
            client = Client(server.url, token)
            cursor = deep_cursor(client)
            for case, params in FILTERS.items():
                query = {**params, "limit": str(PAGE)}
                if "deep" in case:
                    query["cursor"] = cursor
                results[case] = {
                    "api": timed(lambda q=query: client.get("agnes/api/admin/audit", q),
                                 args.repeat),
                    "page": timed(lambda q=query: client.get("agnes/admin/audit", q),
                                  args.repeat),
                }
        store, old_store = open_store(data_dir), open_store(copy)
        core_cursor = Cursor.decode(cursor)
        for case in FILTERS:
            results[case]["core"] = core(store, case, core_cursor, args.repeat)
            results[case]["baseline"] = baseline(old_store, case, args.repeat)
        store.close()
        old_store.close()
    print(f"\n{args.rows:,} rows, {PAGE} entries a page; median / worst of {args.repeat}, ms")
    print(f"{'case':24} {'API':>16} {'page':>16} {'core':>16} {'baseline (OFFSET)':>18}")
    for case, r in results.items():
        cells = [f"{r[k][0]:7.1f} / {r[k][1]:6.1f}" for k in ("api", "page", "core", "baseline")]
        print(f"{case:24} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16} {cells[3]:>18}")


if __name__ == "__main__":
    main()
