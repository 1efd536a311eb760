"""Lab workspaces on a shared server: the list shows a user only what they may open, and
the workspaces live in the data dir (user ids are only unique within one).

Real jupyter-server with JupyterLab, real Agnes credentials; see also test_lab_isolation.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from jupyter_agnes.auth import rbac
from server_extension.lab_workspaces import WORKSPACES_SUBDIR
from tests.server.test_lab_isolation import analyst
from tests.support.apihelpers import bearer, call


def layout(name: str, open_notebook: str) -> dict[str, Any]:
    """A saved workspace as Lab PUTs it: the notebook open in the main area."""
    main = {"current": f"notebook:{open_notebook}"}
    return {"data": {"layout-restorer:data": {"main": main}}, "metadata": {"id": name}}


async def save(jp_fetch: Any, headers: dict[str, str], name: str, notebook: str) -> None:
    resp = await call(jp_fetch, "lab", "api", "workspaces", name, method="PUT", headers=headers,
                      body=layout(name, notebook))
    assert resp.code == 204, resp.body


async def listing(jp_fetch: Any, headers: dict[str, str], slash: bool = False) -> dict[str, Any]:
    parts = ("lab", "api", "workspaces", "") if slash else ("lab", "api", "workspaces")
    resp = await call(jp_fetch, *parts, headers=headers)
    assert resp.code == 200, resp.body
    return json.loads(resp.body)["workspaces"]


async def test_the_list_holds_only_workspaces_the_user_may_open(jp_fetch, agnes):
    alice_id, alice = analyst(agnes, "alice@example.com")
    bob_id, bob = analyst(agnes, "bob@example.com")
    admin = bearer(agnes.pat("root@example.com", admin=True))
    alices = f"{rbac.PERSONAL_WORKSPACE_PREFIX}{alice_id}"
    bobs = f"{rbac.PERSONAL_WORKSPACE_PREFIX}{bob_id}"
    await save(jp_fetch, alice, alices, "alice-secret.ipynb")
    await save(jp_fetch, bob, bobs, "bob-own.ipynb")
    await save(jp_fetch, alice, "team", "shared.ipynb")  # any other name stays shared

    for slash in (False, True):
        bob_sees = await listing(jp_fetch, bob, slash)
        assert sorted(bob_sees["ids"]) == sorted([bobs, "team"]), bob_sees["ids"]
        assert "alice-secret.ipynb" not in json.dumps(bob_sees["values"])
        assert "bob-own.ipynb" in json.dumps(bob_sees["values"])
    alice_sees = await listing(jp_fetch, alice)
    assert sorted(alice_sees["ids"]) == sorted([alices, "team"])
    admin_sees = await listing(jp_fetch, admin)
    assert sorted(admin_sees["ids"]) == sorted([alices, bobs, "team"])
    assert "alice-secret.ipynb" in json.dumps(admin_sees["values"])

    # Bob still saves and reopens his own.
    await save(jp_fetch, bob, bobs, "bob-second.ipynb")
    resp = await call(jp_fetch, "lab", "api", "workspaces", bobs, headers=bob)
    assert "bob-second.ipynb" in resp.body.decode()
    assert "bob-second.ipynb" in json.dumps((await listing(jp_fetch, bob))["values"])


def lab_workspaces_dir(serverapp: Any) -> str:
    (lab,) = serverapp.extension_manager.extension_apps["jupyterlab"]
    return lab.workspaces_dir


async def test_workspaces_live_in_the_data_dir(jp_fetch, jp_serverapp, agnes, agnes_data_dir):
    alice_id, alice = analyst(agnes, "alice@example.com")
    folder = agnes_data_dir / WORKSPACES_SUBDIR
    assert lab_workspaces_dir(jp_serverapp) == str(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    await save(jp_fetch, alice, f"{rbac.PERSONAL_WORKSPACE_PREFIX}{alice_id}", "a.ipynb")
    saved = list(folder.iterdir())
    assert [p.name.startswith(f"{rbac.PERSONAL_WORKSPACE_PREFIX}{alice_id}") for p in saved] == [
        True
    ]


class TestAnOperatorsWorkspacesDir:
    @pytest.fixture
    def chosen(self, tmp_path: Path) -> Path:
        return tmp_path / "operator-workspaces"

    @pytest.fixture
    def agnes_extra_config(self, chosen: Path) -> dict[str, Any]:
        return {"LabApp": {"workspaces_dir": str(chosen)}}

    async def test_is_kept(self, jp_fetch, jp_serverapp, agnes, agnes_data_dir, chosen):
        alice_id, alice = analyst(agnes, "alice@example.com")
        assert lab_workspaces_dir(jp_serverapp) == str(chosen)
        await save(jp_fetch, alice, f"{rbac.PERSONAL_WORKSPACE_PREFIX}{alice_id}", "a.ipynb")
        assert len(list(chosen.iterdir())) == 1
        assert not (agnes_data_dir / WORKSPACES_SUBDIR).exists()
        # The list reads the operator's folder too.
        assert (await listing(jp_fetch, alice))["ids"] == [
            f"{rbac.PERSONAL_WORKSPACE_PREFIX}{alice_id}"
        ]
