"""Removal under the hub (`jupyter_agnes.hub.reconcile`): which running servers must stop,
from a real store, and the reconciler against a fake hub API on loopback (pagination,
audit rows, and a loop that survives the hub's errors)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from traitlets import TraitError

from jupyter_agnes.auth.google_refresh import DEFAULT_REFRESH_S
from jupyter_agnes.auth.service import AuthService
from jupyter_agnes.hub.reconcile import (
    ACTOR,
    DEACTIVATED,
    NO_LAB,
    STOP_ACTION,
    UNKNOWN,
    HubReconciler,
    servers_to_stop,
)
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.engine import open_store
from jupyter_agnes.store.models import AuditEntry
from tests.fakes.hub_api import FakeHubAPI

TOKEN = "service-token"
LAB = "lab@example.com"
ADMIN = "admin@example.com"
VIEWER = "viewer@example.com"
REVOKED = "revoked@example.com"  # had lab, lost it
OFF = "off@example.com"  # has lab, deactivated


@pytest.fixture
def auth(tmp_path: Path) -> Iterator[AuthService]:
    store = open_store(resolve_data_dir(tmp_path))
    with store.write() as s:
        lab = directory.get_or_create_group(s, "analysts", created_by="test")
        directory.add_grant(s, lab, "lab", "*", assigned_by="test")
        others = directory.get_or_create_group(s, "others", created_by="test")
        directory.add_grant(s, others, "lab", "*", assigned_by="test")
        admins = directory.get_group(s, directory.ADMIN_GROUP)
        for email, group in ((LAB, lab), (ADMIN, admins), (VIEWER, None), (REVOKED, others),
                             (OFF, lab)):
            user = directory.create_user(s, email)
            if group is not None:
                directory.add_member(s, user, group, "admin", "test")
    service = AuthService(store)
    yield service
    service.close()
    store.close()


def change(auth: AuthService, *, revoke: str = "", deactivate: str = "") -> None:
    with auth.store.write() as s:
        if revoke:
            directory.remove_grant(s, directory.get_group(s, revoke), "lab", "*")
        if deactivate:
            directory.set_user_active(s, directory.get_user_by_email(s, deactivate), False)


def stop_rows(auth: AuthService) -> list[tuple[str, str, Any, Any]]:
    with auth.store.read() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == STOP_ACTION))
        return [(r.actor, r.resource, r.user_id is not None, r.params["reason"]) for r in rows]


def test_only_active_lab_users_keep_their_servers(auth: AuthService) -> None:
    running = [LAB, ADMIN, VIEWER, REVOKED, OFF, "stranger@example.com", "not-an-email"]
    assert servers_to_stop(auth, running) == {
        VIEWER: NO_LAB,
        "stranger@example.com": UNKNOWN,
        "not-an-email": UNKNOWN,
    }
    change(auth, revoke="others", deactivate=OFF)
    assert servers_to_stop(auth, running) == {
        VIEWER: NO_LAB,
        REVOKED: NO_LAB,
        OFF: DEACTIVATED,
        "stranger@example.com": UNKNOWN,
        "not-an-email": UNKNOWN,
    }
    assert servers_to_stop(auth, [LAB.upper()]) == {}  # emails match case-insensitively


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, DEFAULT_REFRESH_S), ("", DEFAULT_REFRESH_S), ("2.5", 2.5)]
)
def test_refresh_interval(
    auth: AuthService, monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: float
) -> None:
    if raw is not None:
        monkeypatch.setenv("AGNES_HUB_REFRESH_S", raw)
    assert HubReconciler(auth, "http://127.0.0.1:1/hub/api", TOKEN).interval_s == expected


@pytest.mark.parametrize("raw", ["5m", "0", "-1", "nan", "inf"])
def test_a_bad_refresh_interval_is_a_startup_error(
    auth: AuthService, monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("AGNES_HUB_REFRESH_S", raw)
    with pytest.raises(TraitError, match="AGNES_HUB_REFRESH_S"):
        HubReconciler(auth, "http://127.0.0.1:1/hub/api", TOKEN)


def test_the_service_needs_the_hubs_env(auth: AuthService) -> None:
    with pytest.raises(TraitError, match="JUPYTERHUB_API_TOKEN"):
        HubReconciler.from_hub_env(auth, {"JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api"})


def running(*names: str, pending: str | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    return {name: {"": {"name": "", "ready": True, "pending": pending}} for name in names}


def test_a_tick_stops_removed_users_servers_and_audits_each(auth: AuthService) -> None:
    with FakeHubAPI(TOKEN, page_size=2) as hub:
        # Six users over three pages; one removed user's server is already being stopped,
        # another's is starting (the spawner's own Lab check refuses it).
        hub.servers = {**running(LAB, ADMIN, VIEWER, "stranger@example.com"),
                       **running(REVOKED, pending="stop"), **running(OFF, pending="spawn")}
        change(auth, revoke="others", deactivate=OFF)
        reconciler = HubReconciler(auth, hub.api_url, TOKEN)
        stopped = asyncio.run(reconciler.tick())
        assert stopped == {VIEWER: NO_LAB, "stranger@example.com": UNKNOWN}
        assert sorted(hub.deleted) == ["stranger@example.com", VIEWER]
        assert [c for c in hub.calls if c[0] == "GET"][-1][1].endswith("offset=4")
        hub.servers[OFF][""]["pending"] = None  # it started after all: the next tick stops it
        assert asyncio.run(reconciler.tick()) == {OFF: DEACTIVATED}
        assert sorted(stop_rows(auth)) == sorted([
            (ACTOR, f"user:{OFF}", True, DEACTIVATED),
            (ACTOR, "user:stranger@example.com", False, UNKNOWN),
            (ACTOR, f"user:{VIEWER}", True, NO_LAB),
        ])
        assert asyncio.run(reconciler.tick()) == {}  # nothing runs that must stop
        assert len(stop_rows(auth)) == 3


def test_a_wrong_token_stops_nothing(auth: AuthService) -> None:
    with FakeHubAPI(TOKEN) as hub:
        hub.servers = running(VIEWER)
        with pytest.raises(Exception, match="403"):
            asyncio.run(HubReconciler(auth, hub.api_url, "not-the-token").tick())
        assert hub.deleted == [] and stop_rows(auth) == []


def test_hub_errors_never_end_the_loop(
    auth: AuthService, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(hub: FakeHubAPI) -> None:
        reconciler = HubReconciler(auth, hub.api_url, TOKEN, interval_s=0.05)
        reconciler.log = logging.getLogger("test-reconciler")
        task = asyncio.create_task(reconciler.run_forever())
        try:
            hub.down = True  # connections dropped: httpx errors
            while len(hub.calls) < 2:
                await asyncio.sleep(0.02)
            hub.down, hub.fail_next = False, 2  # then two 500s
            while hub.fail_next:
                await asyncio.sleep(0.02)
            hub.servers = running(VIEWER)
            deadline = time.monotonic() + 30  # generous: CI machines are loaded
            # Until the stop is audited and logged, not only sent (the DELETE comes first).
            stopped = f"Agnes stopped {VIEWER}"
            while not (stop_rows(auth) and stopped in caplog.text) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert not task.done()
        finally:
            task.cancel()

    with caplog.at_level(logging.INFO, "test-reconciler"), FakeHubAPI(TOKEN) as hub:
        asyncio.run(scenario(hub))
        assert hub.deleted == [VIEWER]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) >= 3, errors
    assert any("500" in e for e in errors) and any("GET http://127.0.0.1" in e for e in errors)
    assert f"Agnes stopped {VIEWER}'s hub server: {NO_LAB}" in caplog.text
    assert stop_rows(auth) == [(ACTOR, f"user:{VIEWER}", True, NO_LAB)]
