"""Kernels started by a server get that server's AGNES_DATA_DIR; the process env is untouched."""

from __future__ import annotations

import json
import os

import pytest

from tests.support.apihelpers import bearer, call


@pytest.fixture
def agnes_extra_config():
    # Set through server config only: kernels must still see them (for %%ask traces).
    return {"ObservabilitySettings": {"llm_payloads": True, "environment": "staging"}}


async def test_kernels_get_the_servers_data_dir(jp_fetch, jp_serverapp, agnes, agnes_data_dir):
    before = os.environ.get("AGNES_DATA_DIR")
    token = agnes.pat("k@example.com", admin=True)
    resp = await call(jp_fetch, "api", "kernels", method="POST", headers=bearer(token),
                      body=json.dumps({"name": "python3"}))
    assert resp.code == 201, resp.body
    kernel_id = json.loads(resp.body)["id"]
    try:
        km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        msg_id = client.execute(
            "import os; print(*(os.environ.get(k) for k in "
            "('AGNES_DATA_DIR', 'POSTHOG_LLM_PAYLOADS', 'POSTHOG_ENVIRONMENT')))"
        )
        printed = ""
        while True:
            msg = await client.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                printed += msg["content"]["text"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        client.stop_channels()
        assert printed.split() == [str(agnes_data_dir.resolve()), "1", "staging"]
    finally:
        await call(jp_fetch, "api", "kernels", kernel_id, method="DELETE", headers=bearer(token))
    assert os.environ.get("AGNES_DATA_DIR") == before
