"""`/agnes/api/admin/sources` and `POST /agnes/api/sync` running sources, through a real
server: admins only, every credential check, bodies refused, a run's per-table progress,
and a failed source keeping the previous data with its one-line error."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import update

from jupyter_agnes.store.models import PersonalAccessToken, utcnow
from tests.support.apihelpers import bearer, call, cookie_header

BASE = ("agnes", "api", "admin", "sources")


async def api(jp_fetch, headers, method, *path, body=None):
    resp = await call(jp_fetch, *BASE, *path, method=method, headers=headers, body=body)
    return resp.code, (json.loads(resp.body) if resp.body else None)


async def wait_job(jp_fetch, headers, job_id):
    for _ in range(600):
        resp = await call(jp_fetch, "agnes", "api", "sync", job_id, headers=headers)
        job = json.loads(resp.body)
        if job["status"] not in ("queued", "running"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(job)


async def test_add_list_get_run_remove(jp_fetch, agnes, tmp_path):
    admin = bearer(agnes.pat("boss@example.com", admin=True))
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "things.csv").write_text("a,b\n1,2\n3,4\n")
    body = {"name": "crm", "type": "local", "options": {"path": str(folder)}, "schedule": "1h"}
    code, created = await api(jp_fetch, admin, "POST", body=body)
    assert code == 201 and created["schedule"] == "1h" and created["next_run_at"]
    assert (await api(jp_fetch, admin, "POST", body=body))[0] == 409
    code, listed = await api(jp_fetch, admin, "GET")
    assert [s["name"] for s in listed["sources"]] == ["crm"]

    code, job = await api(jp_fetch, admin, "POST", "crm", "run")
    assert code == 202
    job = await wait_job(jp_fetch, admin, job["id"])
    assert job["status"] == "done", job
    assert job["progress"]["tables"]["things"]["rows"] == 2
    assert job["report"]["extracted"] == {"crm": {"things": 2}}

    # The folder vanishes: the run fails in one line, the previous data stays queryable.
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    resp = await call(jp_fetch, "agnes", "api", "sync", method="POST", headers=admin,
                      body={"source": "crm"})
    job = await wait_job(jp_fetch, admin, json.loads(resp.body)["id"])
    assert job["status"] == "failed" and "is not a directory" in job["error"]
    assert "\n" not in job["error"]
    resp = await call(jp_fetch, "agnes", "api", "query", method="POST", headers=admin,
                      body={"sql": "SELECT count(*) AS n FROM things"})
    assert resp.code == 200 and json.loads(resp.body)["rows"] == [[2]]
    code, model = await api(jp_fetch, admin, "GET", "crm")
    assert model["last_status"] == "failed" and "is not a directory" in model["last_error"]
    assert model["last_rows"] == 2

    assert (await api(jp_fetch, admin, "DELETE", "crm"))[0] == 204
    assert (await api(jp_fetch, admin, "GET", "crm"))[0] == 404
    assert (await api(jp_fetch, admin, "POST", "crm", "run"))[0] == 404


async def test_sync_without_source_runs_every_source(jp_fetch, agnes):
    admin = bearer(agnes.pat("all@example.com", admin=True))
    for name in ("s1", "s2"):
        body = {"name": name, "type": "sample", "options": {"rows": "100"}}
        assert (await api(jp_fetch, admin, "POST", body=body))[0] == 201
    resp = await call(jp_fetch, "agnes", "api", "sync", method="POST", headers=admin, body={})
    job = await wait_job(jp_fetch, admin, json.loads(resp.body)["id"])
    assert job["status"] == "done" and set(job["report"]["extracted"]) == {"s1", "s2"}
    # s1 claimed the sample tables first; s2's collide and are reported, not overwritten.
    assert any("already owned by source s1" in p for p in job["report"]["problems"])


async def test_only_admins(jp_fetch, agnes):
    plain = bearer(agnes.pat("plain@example.com"))
    for method, path in (("GET", ()), ("POST", ()), ("GET", ("x",)), ("DELETE", ("x",)),
                         ("POST", ("x", "run"))):
        code, body = await api(jp_fetch, plain, method, *path,
                               body={} if method == "POST" else None)
        assert code == 403, (method, path)
    data_only = bearer(agnes.pat("scoped@example.com", admin=True, scopes=["data"]))
    assert (await api(jp_fetch, data_only, "GET"))[0] == 403


async def test_bad_credentials(jp_fetch, agnes):
    token = agnes.pat("old@example.com", admin=True)
    assert (await api(jp_fetch, bearer("agnes_pat_" + "x" * 40), "GET"))[0] == 401
    assert (await api(jp_fetch, {}, "GET"))[0] in (401, 403)
    with agnes.store.write() as s:
        s.execute(update(PersonalAccessToken).values(expires_at=utcnow() - timedelta(days=1)))
    assert (await api(jp_fetch, bearer(token), "GET"))[0] == 401
    token = agnes.pat("rev@example.com", admin=True)
    with agnes.store.write() as s:
        s.execute(update(PersonalAccessToken).values(revoked_at=utcnow()))
    assert (await api(jp_fetch, bearer(token), "GET"))[0] == 401


async def test_cookie_sessions_need_xsrf(jp_fetch, agnes):
    cookie = agnes.session_cookie("web@example.com", admin=True)
    body = {"name": "s1", "type": "sample", "options": {"rows": "10"}}
    assert (await api(jp_fetch, cookie_header(cookie), "POST", body=body))[0] == 403
    code, _ = await api(jp_fetch, cookie_header(cookie, xsrf="abc123"), "POST", body=body)
    assert code == 201
    assert (await api(jp_fetch, cookie_header(cookie), "GET"))[0] == 200


@pytest.mark.parametrize(
    "body",
    [
        "{bad json",
        "[]",
        json.dumps({"name": "x", "type": "nosuch"}),
        json.dumps({"name": "bad name", "type": "sample"}),
        json.dumps({"name": "x", "type": "sample", "options": {"rows": 5}}),
        json.dumps({"name": "x", "type": "sample", "options": ["rows=5"]}),
        json.dumps({"name": "x", "type": "sample", "options": {"rows": "1\x1b[2J"}}),
        json.dumps({"name": "x", "type": "sample", "schedule": "0s"}),
        json.dumps({"name": "x", "type": "sample", "schedule": 900}),
        json.dumps({"name": "x", "type": "local", "options": {"path": "/x"}, "tables": 5}),
        json.dumps({"name": "x", "type": "local"}),  # no path
        json.dumps({"name": "x", "type": "sample", "pad": "y" * 1_100_000}),
    ],
)
async def test_bad_bodies(jp_fetch, agnes, body):
    admin = bearer(agnes.pat("bb@example.com", admin=True))
    code, payload = await api(jp_fetch, admin, "POST", body=body)
    assert code in (400, 413) and payload["message"]
    assert (await api(jp_fetch, admin, "GET"))[1] == {"sources": []}
