"""Dashboard kernels are bounded: at most AGNES_VOILA_MAX_KERNELS_PER_USER live per user
(the oldest go), and one without an open connection for AGNES_VOILA_CULL_IDLE_S is shut
down. Real server, real Voila renders, real agnes kernels."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from server_extension.dashboard_kernels import CULL_IDLE_KNOB

# The Voila server, its sample data and notebooks (fixtures), and request helpers.
from tests.kernel.test_dashboards_access import (  # noqa: F401
    SALES,
    agnes_kernelspec,
    get,
    jp_root_dir,
    kernel_id_of,
    render,
    sample_analytics,
    viewer,
)
from tests.support.apihelpers import call, cookie_header

SLOW = "dashboards/slow.ipynb"
SLOW_SECONDS = 6
SLOW_DONE = "rendered-after-the-sleep"


@pytest.fixture
def voila_knobs() -> dict[str, str]:
    """Knobs set before the server starts; a test parametrizes this to change them."""
    return {}


@pytest.fixture
def agnes_extra_config(
    request: pytest.FixtureRequest, voila_knobs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """test_dashboards_access's server, with `voila_knobs` set before it starts (the kernel
    manager reads them when it is built)."""
    for name, value in voila_knobs.items():
        monkeypatch.setenv(name, value)
    for needed in ("sample_analytics", "agnes_kernelspec"):
        request.getfixturevalue(needed)
    extensions = {"jupyter_agnes": True, "jupyterlab": True, "voila": True}
    return {"ServerApp": {"jpserver_extensions": extensions}}


def dashboard_kernels_of(km: Any, user_id: int) -> set[str]:
    return {kid for kid in km.dashboard_kernels() if km.kernel_owner_id(kid) == user_id}


async def wait_gone(km: Any, kernel_id: str, timeout: float = 60) -> float:
    """Seconds until `kernel_id` is no longer running (fails after `timeout`)."""
    start = time.monotonic()
    while kernel_id in km:
        if time.monotonic() - start > timeout:
            pytest.fail(f"kernel {kernel_id} still running after {timeout} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - start


async def test_a_user_holds_at_most_three_dashboard_kernels(jp_fetch, jp_serverapp, agnes):
    km = jp_serverapp.kernel_manager
    assert km.dashboard_kernels_per_user == 3  # the default
    other = viewer(agnes, "other@example.com", SALES)
    code, page = await render(jp_fetch, other)
    assert code == 200, page[:2000]
    others = kernel_id_of(page)

    # An analyst: their Lab kernel is not a dashboard kernel, so it neither counts nor goes.
    me = viewer(agnes, "me@example.com", SALES)
    agnes.grant("me-group", "lab", "*")
    with_xsrf = cookie_header(agnes.session_cookie("me@example.com"), "x1")
    lab = await call(jp_fetch, "api", "kernels", method="POST", headers=with_xsrf,
                     body={"name": "python3"})
    assert lab.code == 201, lab.body
    lab_kernel = json.loads(lab.body)["id"]
    my_id = agnes.user("me@example.com")

    mine = []
    for _ in range(4):
        code, page = await render(jp_fetch, me)
        assert code == 200, page[:2000]
        assert "Traceback" not in page
        mine.append(kernel_id_of(page))
        assert len(dashboard_kernels_of(km, my_id)) <= 3
    assert mine[0] not in km  # the oldest was shut down when the fourth opened
    assert dashboard_kernels_of(km, my_id) == set(mine[1:])
    assert others in km and lab_kernel in km
    assert dashboard_kernels_of(km, agnes.user("other@example.com")) == {others}

    # The newest keeps working for its viewer.
    assert (await get(jp_fetch, "api", "kernels", mine[-1], headers=me)).code == 200


@pytest.mark.parametrize("voila_knobs", [{CULL_IDLE_KNOB: "3"}])
async def test_a_dashboard_kernel_nobody_is_connected_to_is_culled(
    jp_fetch, jp_ws_fetch, jp_serverapp, agnes
):
    km = jp_serverapp.kernel_manager
    assert km.dashboard_cull_idle_timeout == 3
    slow = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        f"import time\ntime.sleep({SLOW_SECONDS})\nprint({SLOW_DONE!r})"
    )])
    slow.metadata["kernelspec"] = {"name": "agnes", "display_name": "Agnes", "language": "python"}
    nbformat.write(slow, Path(jp_serverapp.root_dir) / SLOW)  # jp_root_dir's copy
    me = viewer(agnes, "me@example.com", SALES, SLOW)

    # A render is an open connection: a page slower than the timeout is not cut off.
    resp = await get(jp_fetch, "voila", "render", *SLOW.split("/"), headers=me)
    page = resp.body.decode(errors="replace")
    assert resp.code == 200, page[:2000]
    assert SLOW_DONE in page, page[-3000:]
    watched = kernel_id_of(page)
    assert watched in km
    ws = await jp_ws_fetch("api", "kernels", watched, "channels", headers=me)

    code, page = await render(jp_fetch, me)
    assert code == 200, page[:2000]
    unwatched = kernel_id_of(page)
    waited = await wait_gone(km, unwatched)
    assert waited > 2, waited  # not before the timeout has run since its render ended
    assert watched in km  # its websocket is open

    await asyncio.sleep(4)  # longer than the timeout plus a check: still there
    assert watched in km
    ws.close()
    await wait_gone(km, watched)
    assert km.dashboard_kernels() == {}
