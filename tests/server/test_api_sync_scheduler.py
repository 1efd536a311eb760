"""POST /agnes/api/sync with the scheduler secret, through a real jupyter-server: a 202 job,
polled to a finished report; non-admins get 403; short, wrong or hostile secrets get 401."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import pytest

from jupyter_agnes.orchestrator import SyncOrchestrator
from tests.support.apihelpers import assert_401, bearer, call, utc_iso
from tests.support.datahelpers import make_extract

SCHEDULER = "sched-" + "s" * 40
MIN_LEN = 32


@pytest.fixture
def agnes_extra_config() -> dict[str, Any]:
    return {"AuthService": {"scheduler_token": SCHEDULER}}


@pytest.fixture
def data(agnes, agnes_data_dir):
    """One built source, one extract written after the build, and an admin PAT."""
    make_extract(agnes_data_dir, "shop", {"orders": "SELECT range AS id FROM range(300)"})
    orch = SyncOrchestrator(agnes_data_dir, store=agnes.store)
    assert orch.rebuild().problems == []
    make_extract(agnes_data_dir, "late", {"late_t": "SELECT range AS x FROM range(7)"})
    return {"admin": bearer(agnes.pat("boss@example.com", admin=True)), "dir": agnes_data_dir}


async def sync(jp_fetch, headers, body=None):
    return await call(jp_fetch, "agnes", "api", "sync", method="POST", headers=headers, body=body)


async def finished(jp_fetch, job_id: str, headers) -> dict[str, Any]:
    """Poll GET /agnes/api/sync/{id} until the job is done or failed (60 s at most)."""
    job: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        resp = await call(jp_fetch, "agnes", "api", "sync", job_id, headers=headers)
        assert resp.code == 200, resp.body
        job = json.loads(resp.body)
        if job["status"] in ("done", "failed"):
            return job
        assert job["status"] in ("queued", "running"), job
        await asyncio.sleep(0.05)
    raise AssertionError(f"sync job never finished: {job}")


async def count(jp_fetch, headers, table: str) -> tuple[int, Any]:
    resp = await call(
        jp_fetch,
        "agnes",
        "api",
        "query",
        method="POST",
        headers=headers,
        body={"sql": f"SELECT count(*) AS n FROM {table}"},
    )
    out = json.loads(resp.body)
    return resp.code, out.get("rows", out.get("message"))


async def test_scheduler_sync_returns_a_job_that_finishes_with_a_report(jp_fetch, data):
    assert (await count(jp_fetch, data["admin"], "late_t"))[0] == 404  # not built yet
    resp = await sync(jp_fetch, bearer(SCHEDULER))  # no XSRF token: a bearer is exempt
    assert resp.code == 202, resp.body
    job = json.loads(resp.body)
    assert re.fullmatch(r"[0-9a-f]{32}", job["id"])
    assert job["status"] in ("queued", "running", "done")
    assert job["requested_by"] == "scheduler@system.local"
    assert job["source"] is None
    assert resp.headers["Location"].endswith(f"/agnes/api/sync/{job['id']}")
    assert utc_iso(job["created_at"]) and job["finished_at"] is None  # ISO 8601, not epoch

    done = await finished(jp_fetch, job["id"], bearer(SCHEDULER))
    assert done["status"] == "done", done
    assert done["created_at"] == job["created_at"]
    assert utc_iso(done["finished_at"]) >= utc_iso(done["created_at"])
    assert done["error"] is None
    report = done["report"]
    assert report["sources"] == {"late": ["late_t"], "shop": ["orders"]}
    assert report["problems"] == []
    assert re.fullmatch(r"[0-9a-f]{32}", report["build_id"])
    assert done["progress"]["done"] == done["progress"]["total"] > 0
    # an admin sees the same job, and the rebuilt table is queryable
    resp = await call(jp_fetch, "agnes", "api", "sync", job["id"], headers=data["admin"])
    assert resp.code == 200 and json.loads(resp.body)["report"] == report
    assert await count(jp_fetch, data["admin"], "late_t") == (200, [[7]])
    body = resp.body.decode()
    assert SCHEDULER not in body and "Traceback" not in body


async def test_scheduler_sync_of_one_source(jp_fetch, data):
    make_extract(data["dir"], "shop", {"orders": "SELECT range AS id FROM range(5)"})
    resp = await sync(jp_fetch, bearer(SCHEDULER), {"source": "shop"})
    assert resp.code == 202, resp.body
    job = json.loads(resp.body)
    assert job["source"] == "shop"
    done = await finished(jp_fetch, job["id"], bearer(SCHEDULER))
    assert done["status"] == "done" and done["report"]["problems"] == [], done
    assert done["report"]["sources"] == {"shop": ["orders"]}
    assert await count(jp_fetch, data["admin"], "orders") == (200, [[5]])
    assert (await count(jp_fetch, data["admin"], "late_t"))[0] == 404  # not this source


async def test_scheduler_sync_rejects_bad_bodies(jp_fetch, data):
    for body, status in [
        ({"source": "../x"}, 400),
        ({"source": "a b; DROP"}, 400),
        ({"source": "x" * 10_000}, 400),
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (b'{"source": "' + b"x" * (2 * 1024 * 1024) + b'"}', 413),
    ]:
        resp = await sync(jp_fetch, bearer(SCHEDULER), body)
        assert resp.code == status, (body[:40], resp.body[:200])
        assert "message" in json.loads(resp.body)
        assert "Traceback" not in resp.body.decode()


async def test_unknown_job_id_is_404_for_the_scheduler(jp_fetch, data):
    resp = await call(jp_fetch, "agnes", "api", "sync", "0" * 32, headers=bearer(SCHEDULER))
    assert resp.code == 404
    assert json.loads(resp.body)["message"] == "Sync job not found"


async def test_non_admin_pat_gets_403(jp_fetch, agnes, data):
    analyst = bearer(agnes.pat("ann@example.com"))
    resp = await sync(jp_fetch, analyst)
    assert resp.code == 403
    assert json.loads(resp.body)["message"] == "Admin or scheduler access required"
    resp = await sync(jp_fetch, bearer(SCHEDULER))
    job_id = json.loads(resp.body)["id"]
    resp = await call(jp_fetch, "agnes", "api", "sync", job_id, headers=analyst)
    assert resp.code == 403  # nor may they read a job's report
    assert json.loads(resp.body)["message"] == "Admin or scheduler access required"
    assert (await finished(jp_fetch, job_id, bearer(SCHEDULER)))["status"] == "done"


@pytest.mark.parametrize(
    "secret",
    [
        SCHEDULER[:-1] + "x",  # one character off
        SCHEDULER[:MIN_LEN],  # a prefix that is itself long enough
        SCHEDULER + "s",  # one character longer
        SCHEDULER.upper(),
    ],
    ids=["last-char", "prefix", "longer", "case"],
)
async def test_wrong_scheduler_secret_gets_401(jp_fetch, data, secret):
    resp = await sync(jp_fetch, bearer(secret))
    assert_401(resp, "Invalid or expired token")
    resp = await call(jp_fetch, "agnes", "api", "sync", "0" * 32, headers=bearer(secret))
    assert_401(resp, "Invalid or expired token")
    assert secret not in resp.body.decode()
    assert (await count(jp_fetch, data["admin"], "late_t"))[0] == 404  # nothing was built


BAD_TOKEN = "Invalid or expired token"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (f"Basic {SCHEDULER}", "Unsupported authorization scheme"),  # right secret, wrong scheme
        ("Bearer " + "s" * 8_000, BAD_TOKEN),  # oversized (tornado itself stops at 64 KB)
        ("Bearer", BAD_TOKEN),  # empty
        (f"Bearer {SCHEDULER[:-1]}\u00e9", BAD_TOKEN),  # not ASCII
        (f"Bearer  {SCHEDULER} extra", BAD_TOKEN),  # trailing junk
    ],
    ids=["scheme", "oversized", "empty", "non-ascii", "junk"],
)
async def test_hostile_authorization_headers_get_401(jp_fetch, data, header, message):
    resp = await sync(jp_fetch, {"Authorization": header})
    assert resp.code == 401, resp.body
    out = json.loads(resp.body)
    assert out["message"].startswith(message) and out["reason"] == "Unauthorized"
    assert SCHEDULER not in resp.body.decode()


async def test_control_character_in_the_header_is_refused(jp_fetch, data):
    resp = await sync(jp_fetch, {"Authorization": f"Bearer {SCHEDULER[:20]}\x01{SCHEDULER[21:]}"})
    assert resp.code in (400, 401)  # tornado refuses the header line itself: 400
    assert SCHEDULER.encode() not in resp.body and b"Traceback" not in resp.body


@pytest.mark.parametrize(
    ("agnes_extra_config", "token"),
    [
        ({"AuthService": {"scheduler_token": "short-secret"}}, "short-secret"),
        ({"AuthService": {"scheduler_token": "y" * (MIN_LEN - 1)}}, "y" * (MIN_LEN - 1)),
    ],
    ids=["short", "one-under-minimum"],
)
async def test_short_configured_secret_is_ignored(
    jp_fetch, data, agnes_extra_config, token, caplog
):
    resp = await sync(jp_fetch, bearer(token))
    assert_401(resp, "Invalid or expired token")
    resp = await call(jp_fetch, "agnes", "api", "me", headers=bearer(token))
    assert resp.code == 401
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    warned = [r.getMessage() for r in records if "SCHEDULER_API_TOKEN" in r.getMessage()]
    assert warned and all(token not in m for m in warned)  # the operator is told, safely


@pytest.mark.parametrize(
    "agnes_extra_config", [{"AuthService": {"scheduler_token": "z" * MIN_LEN}}], ids=["exact"]
)
async def test_secret_of_exactly_the_minimum_length_works(jp_fetch, data, agnes_extra_config):
    resp = await sync(jp_fetch, bearer("z" * MIN_LEN))
    assert resp.code == 202, resp.body
    job = json.loads(resp.body)
    assert (await finished(jp_fetch, job["id"], bearer("z" * MIN_LEN)))["status"] == "done"
