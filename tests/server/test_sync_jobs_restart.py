"""A sync job outlives the server that ran it: a real `jupyter agnes serve` restarted on
the same data dir answers for it (the unit rules are in tests/unit/test_sync_jobs.py)."""

from __future__ import annotations

import time

import requests

from tests.support.datahelpers import make_extract
from tests.support.server_process import agnes_server, bootstrap_pat


def test_a_real_server_restart_keeps_the_job(tmp_path):
    data_dir = tmp_path / "data"
    make_extract(data_dir, "shop", {"orders": "SELECT range AS id FROM range(50)"})
    headers = {"Authorization": f"Bearer {bootstrap_pat(data_dir)}"}
    with agnes_server(data_dir) as server:
        resp = requests.post(server.url + "agnes/api/sync", headers=headers, timeout=30)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        deadline = time.monotonic() + 60
        while (job := requests.get(f"{server.url}agnes/api/sync/{job_id}", headers=headers,
                                   timeout=30).json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        assert job["status"] == "done"
    with agnes_server(data_dir) as server:
        again = requests.get(f"{server.url}agnes/api/sync/{job_id}", headers=headers, timeout=30)
        assert again.status_code == 200 and again.json() == job
        gone = requests.get(f"{server.url}agnes/api/sync/{'f' * 32}", headers=headers, timeout=30)
        assert gone.status_code == 404 and gone.json()["message"] == "Sync job not found"
