"""Idle kernels are culled: AGNES_KERNEL_CULL_IDLE_S is the default, config wins."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets.config import Config

from server_extension.kernel_owners import (
    CULL_IDLE_DEFAULT_S,
    CULL_IDLE_KNOB,
    KernelOwnership,
    with_kernel_ownership,
)
from tests.support.apihelpers import bearer, call

OwnedManager = with_kernel_ownership(AsyncMappingKernelManager)


def test_the_knob_is_the_default_and_config_wins(monkeypatch, tmp_path):
    monkeypatch.delenv(CULL_IDLE_KNOB, raising=False)
    assert OwnedManager(root_dir=str(tmp_path)).cull_idle_timeout == CULL_IDLE_DEFAULT_S == 3600
    monkeypatch.setenv(CULL_IDLE_KNOB, "0")  # 0 turns culling off
    assert OwnedManager(root_dir=str(tmp_path)).cull_idle_timeout == 0
    monkeypatch.setenv(CULL_IDLE_KNOB, "120")
    assert OwnedManager(root_dir=str(tmp_path)).cull_idle_timeout == 120
    for section in ("MappingKernelManager", "AsyncMappingKernelManager"):
        config = Config({section: {"cull_idle_timeout": 7}})
        assert OwnedManager(root_dir=str(tmp_path), config=config).cull_idle_timeout == 7
    monkeypatch.setenv(CULL_IDLE_KNOB, "soon")  # unreadable: the default, with a warning
    assert OwnedManager(root_dir=str(tmp_path)).cull_idle_timeout == CULL_IDLE_DEFAULT_S
    assert with_kernel_ownership(OwnedManager) is OwnedManager


def test_the_server_uses_the_owning_manager(jp_serverapp):
    km = jp_serverapp.kernel_manager
    assert isinstance(km, KernelOwnership) and isinstance(km, AsyncMappingKernelManager)


@pytest.fixture
def agnes_extra_config(monkeypatch) -> dict[str, Any]:
    # Set before the server starts: the kernel manager reads it when it is built.
    monkeypatch.setenv(CULL_IDLE_KNOB, "1")
    return {"MappingKernelManager": {"cull_interval": 1}}


async def test_an_idle_kernel_is_culled(jp_fetch, jp_serverapp, agnes):
    assert jp_serverapp.kernel_manager.cull_idle_timeout == 1
    token = bearer(agnes.pat("root@example.com", admin=True))
    resp = await call(jp_fetch, "api", "kernels", method="POST", headers=token,
                      body={"name": "python3"})
    assert resp.code == 201, resp.body
    kid = json.loads(resp.body)["id"]
    deadline = time.monotonic() + 30
    while kid in jp_serverapp.kernel_manager and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    listed = json.loads((await call(jp_fetch, "api", "kernels", headers=token)).body)
    assert kid not in jp_serverapp.kernel_manager and listed == []
