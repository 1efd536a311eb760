"""Voila (server extension) behind Agnes auth, and the /agnes/dashboards index.

A real jupyter-server with the agnes and voila extensions renders the real
notebooks/dashboards/sales.ipynb with the agnes kernel on a small sample dataset.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from tornado.httpclient import HTTPClientError
from tornado.websocket import WebSocketClientConnection

from tests.support.datahelpers import build_sample_analytics

REPO = Path(__file__).resolve().parents[2]
SALES = "dashboards/sales.ipynb"
KERNEL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def sample_analytics(agnes_data_dir: Path) -> Path:
    return build_sample_analytics(agnes_data_dir)


@pytest.fixture
def agnes_kernelspec(jp_data_dir: Path) -> None:
    # pytest-jupyter isolates the Jupyter paths: install the repo's agnes kernelspec there
    # and point at the installed Voila / nbconvert templates.
    shutil.copytree(REPO / "kernels" / "agnes", jp_data_dir / "kernels" / "agnes")
    share = Path(sys.prefix) / "share" / "jupyter"
    for name in ("voila",):  # pytest-jupyter copies the nbconvert ones itself
        if (share / name).is_dir() and not (jp_data_dir / name).exists():
            (jp_data_dir / name).symlink_to(share / name)


@pytest.fixture
def agnes_extra_config(sample_analytics: Path, agnes_kernelspec: None) -> dict[str, Any]:
    # The kernel websocket guard is installed by the extension itself at link time.
    extensions = {"jupyter_agnes": True, "jupyterlab": True, "voila": True}
    return {"ServerApp": {"jpserver_extensions": extensions}}


@pytest.fixture
def jp_root_dir(tmp_path: Path) -> Path:
    root = tmp_path / "root_dir"
    (root / "dashboards" / "team").mkdir(parents=True)
    (root / "private").mkdir()
    shutil.copy(REPO / "notebooks" / SALES, root / SALES)
    shutil.copy(REPO / "notebooks" / SALES, root / "dashboards" / "team" / "ops.ipynb")
    shutil.copy(REPO / "notebooks" / SALES, root / "private" / "secret.ipynb")
    (root / "dashboards" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    (root / "private" / "salaries.png").write_bytes(b"\x89PNG\r\n\x1a\nsecret")
    (root / "dashboards" / ".ipynb_checkpoints").mkdir()
    (root / "dashboards" / ".ipynb_checkpoints" / "sales-checkpoint.ipynb").write_text("{}")
    (root / "dashboards" / "notes.txt").write_text("not a notebook")
    return root


def cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"agnes_session={value}"}


async def get(jp_fetch, *parts: str, headers: dict[str, str] | None = None, method: str = "GET"):
    body = b"" if method == "POST" else None
    return await jp_fetch(
        *parts,
        method=method,
        body=body,
        headers=headers or {},
        raise_error=False,
        follow_redirects=False,
        request_timeout=120,
    )


def viewer(agnes, email: str, *dashboards: str) -> dict[str, str]:
    group = email.split("@")[0] + "-group"
    agnes.user(email, groups=(group,))
    for path in dashboards:
        agnes.grant(group, "dashboard", path)
    return cookie(agnes.session_cookie(email))


async def render(jp_fetch, headers: dict[str, str]) -> tuple[int, str]:
    resp = await get(jp_fetch, "voila", "render", "dashboards", "sales.ipynb", headers=headers)
    return resp.code, resp.body.decode(errors="replace")


def shell_msg(msg_id: str, msg_type: str, content: dict[str, Any]) -> str:
    header = {
        "msg_id": msg_id,
        "msg_type": msg_type,
        "session": "s",
        "username": "",
        "version": "5.3",
    }
    return json.dumps(
        {
            "channel": "shell",
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "buffers": [],
        }
    )


def kernel_id_of(page: str) -> str:
    ids = set(KERNEL_ID.findall(page))
    assert len(ids) == 1, ids
    return ids.pop()


async def assert_runs_no_code(ws: WebSocketClientConnection, tmp_path: Path) -> None:
    """A viewer may not run code: an execute_request must be dropped. Shell messages are
    handled in order, so had it reached the kernel the file would exist by the reply."""
    marker = tmp_path / "viewer-ran-code"
    code = f"open({str(marker)!r}, 'w').write('x')"
    ws.write_message(shell_msg("x1", "execute_request", {"code": code, "silent": False}))
    ws.write_message("not json at all {")
    ws.write_message(shell_msg("h1", "history_request", {"hist_access_type": "tail", "n": 5}))
    ws.write_message(shell_msg("k1", "kernel_info_request", {}))
    seen = []
    for _ in range(200):
        msg = json.loads(await ws.read_message())
        seen.append(msg["msg_type"])
        if msg["msg_type"] == "kernel_info_reply":
            break
    else:  # pragma: no cover - the kernel never answered
        pytest.fail(f"no kernel_info_reply: {seen}")
    assert msg["content"]["status"] == "ok"
    assert "execute_reply" not in seen and "history_reply" not in seen, seen
    assert not marker.exists()


async def test_granted_viewer_renders_the_dashboard_and_uses_its_kernel(
    jp_fetch, jp_ws_fetch, agnes, tmp_path
):
    headers = viewer(agnes, "viewer@example.com", SALES)
    code, page = await render(jp_fetch, headers)
    assert code == 200, page[:2000]
    i = page.find("Traceback")
    assert i < 0, page[i - 500 : i + 3000]
    assert "application/vnd.jupyter.widget-view+json" in page
    kid = kernel_id_of(page)

    # Voila's page asks for its kernel, then opens its websocket: both allowed.
    assert (await get(jp_fetch, "api", "kernels", kid, headers=headers)).code == 200
    ws: WebSocketClientConnection = await jp_ws_fetch(
        "api", "kernels", kid, "channels", headers=headers
    )
    await assert_runs_no_code(ws, tmp_path)
    ws.close()

    # ... but nothing else about kernels.
    assert (await get(jp_fetch, "api", "kernels", headers=headers)).code == 403
    assert (
        await get(jp_fetch, "api", "kernels", kid, headers=headers, method="DELETE")
    ).code == 403
    restart = await get(jp_fetch, "api", "kernels", kid, "restart", headers=headers, method="POST")
    assert restart.code == 403

    # Another viewer, granted something else, cannot reach this kernel.
    other = viewer(agnes, "other@example.com", "dashboards/team/ops.ipynb")
    assert (await get(jp_fetch, "api", "kernels", kid, headers=other)).code == 403
    with pytest.raises(HTTPClientError) as err:
        await jp_ws_fetch("api", "kernels", kid, "channels", headers=other)
    assert err.value.code == 403
    shutdown = await get(jp_fetch, "voila", "api", "shutdown", kid, headers=other, method="POST")
    assert shutdown.code == 403


async def test_a_lab_users_data_pat_is_a_viewer_of_granted_dashboards(
    jp_fetch, jp_ws_fetch, agnes, tmp_path
):
    """`data` reaches the owner's granted dashboards and their widget traffic; even a Lab
    user's kernel runs no code sent through it."""
    agnes.user("ana@example.com", groups=("lab-sales",))
    agnes.grant("lab-sales", "lab", "*")
    agnes.grant("lab-sales", "dashboard", SALES)
    headers = {"Authorization": f"Bearer {agnes.pat('ana@example.com', scopes=['data'])}"}
    code, page = await render(jp_fetch, headers)
    assert code == 200, page[:2000]
    kid = kernel_id_of(page)
    assert (await get(jp_fetch, "api", "kernels", kid, headers=headers)).code == 200
    ws: WebSocketClientConnection = await jp_ws_fetch(
        "api", "kernels", kid, "channels", headers=headers
    )
    await assert_runs_no_code(ws, tmp_path)
    ws.close()
    assert (await get(jp_fetch, "api", "kernels", headers=headers)).code == 403


async def test_viewer_without_the_grant_gets_403(jp_fetch, agnes):
    headers = viewer(agnes, "nogrant@example.com", "dashboards/team/ops.ipynb")
    code, page = await render(jp_fetch, headers)
    assert code == 403
    assert "Traceback" not in page


async def test_anonymous_is_sent_to_log_in(jp_fetch, jp_base_url):
    resp = await get(jp_fetch, "voila", "render", "dashboards", "sales.ipynb")
    assert resp.code == 302
    location = unquote(resp.headers["Location"])
    assert "login" in location and "voila/render/dashboards/sales.ipynb" in location
    for parts in (("agnes", "dashboards"), ("voila", "files", "dashboards", "logo.png")):
        resp = await get(jp_fetch, *parts)
        assert resp.code == 302 and "login" in resp.headers["Location"], parts


@pytest.mark.parametrize(
    "parts",
    [
        ("lab", "api", "settings"),  # a viewer opening a Lab *page* is redirected instead
        ("api", "contents"),
        ("api", "contents", "dashboards", "sales.ipynb"),
        ("api", "kernels"),
        ("api", "sessions"),
        ("voila",),
        ("voila", "tree"),
        ("voila", "tree", "private"),
        ("voila", "api", "contents", "private"),
        ("voila", "files", "private", "salaries.png"),
        ("voila", "files", "dashboards", "team", "ops.ipynb"),
        ("voila", "render", "private", "secret.ipynb"),
        ("voila", "render", "dashboards", "..", "private", "secret.ipynb"),
        ("voila", "render", "dashboards%2F..%2Fprivate%2Fsecret.ipynb"),
        ("voila", "render", "dashboards", "sales.ipynb%00"),
        ("voila", "render", "dashboards/./sales.ipynb"),
        ("voila", "render", "x" * 3000),
    ],
)
async def test_viewer_is_refused_everything_else(jp_fetch, agnes, parts):
    headers = viewer(agnes, "viewer@example.com", SALES)
    resp = await get(jp_fetch, *parts, headers=headers)
    assert resp.code in (403, 404), (parts, resp.code)
    assert resp.code == 403 or parts[-1].startswith("x"), (parts, resp.code)
    assert b"Traceback" not in (resp.body or b"")


async def test_viewer_may_fetch_files_next_to_a_granted_dashboard(jp_fetch, agnes):
    headers = viewer(agnes, "viewer@example.com", SALES)
    resp = await get(jp_fetch, "voila", "files", "dashboards", "logo.png", headers=headers)
    assert resp.code == 200 and resp.body.endswith(b"fake")
    # Voila's own allow-list still applies on top of ours.
    resp = await get(jp_fetch, "voila", "files", "dashboards", "notes.txt", headers=headers)
    assert resp.code == 403


async def test_admin_reaches_the_tree_and_any_dashboard(jp_fetch, agnes):
    headers = cookie(agnes.session_cookie("root@example.com", admin=True))
    assert (await get(jp_fetch, "voila", "tree", headers=headers)).code == 200
    resp = await get(jp_fetch, "voila", "files", "private", "salaries.png", headers=headers)
    assert resp.code == 200


async def test_index_lists_only_granted_dashboards(jp_fetch, agnes, jp_base_url):
    headers = viewer(
        agnes, "viewer@example.com", SALES, "private/secret.ipynb", "nope/missing.ipynb"
    )
    page = (await get(jp_fetch, "agnes", "dashboards", headers=headers)).body.decode()
    links = re.findall(r'class="agnes-dashboard-link" href="([^"]+)">([^<]+)<', page)
    # titles as link text (both notebooks are copies of the sales dashboard)
    assert [text for _, text in links] == ["Sales dashboard", "Sales dashboard"]
    assert [href.split(f"{jp_base_url}voila/render/")[1] for href, _ in links] == [
        "dashboards/sales.ipynb",
        "private/secret.ipynb",  # an old path grant of a notebook outside dashboards/
    ]
    assert 'id="agnes-nav-lab"' not in page and "agnes-dashboard-id" not in page

    empty = viewer(agnes, "nothing@example.com")
    page = (await get(jp_fetch, "agnes", "dashboards", headers=empty)).body.decode()
    assert "No dashboards have been shared with you yet." in page


async def test_index_for_admin_lists_every_dashboard_escaped(jp_fetch, jp_root_dir, agnes):
    hostile = jp_root_dir / "dashboards" / '<img src=x onerror="alert(1)">.ipynb'
    notebook = json.loads((jp_root_dir / SALES).read_text())
    notebook["metadata"]["title"] = "<script>alert(2)</script>"
    hostile.write_text(json.dumps(notebook))
    headers = cookie(agnes.session_cookie("root@example.com", admin=True))
    resp = await get(jp_fetch, "agnes", "dashboards", headers=headers)
    assert resp.code == 200
    page = resp.body.decode()
    assert "<img src=x" not in page and "<script>alert" not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page  # its id, for admins
    assert "%3Cimg%20src%3Dx%20onerror%3D%22alert%281%29%22%3E.ipynb" in page  # its href
    texts = re.findall(r'class="agnes-dashboard-link" href="[^"]+">([^<]+)<', page)
    assert texts == ["&lt;script&gt;alert(2)&lt;/script&gt;", "Sales dashboard", "Sales dashboard"]
    assert "private" not in page and "checkpoint" not in page
    assert 'id="agnes-nav-lab"' in page  # the nav bar links admins to Lab


async def test_shared_by_id_renders_with_a_header_whose_links_work(jp_fetch, agnes, jp_base_url):
    """`grant … dashboard sales` (the id) opens the dashboard; the Voila page has a header
    back to the dashboards and to sign out (PostHog is off here), under base_url."""
    headers = viewer(agnes, "viewer@example.com", "sales")
    code, page = await render(jp_fetch, headers)
    assert code == 200, page[:2000]
    header = re.search(r'<body[^>]*>\s*<nav id="agnes-voila-header".*?</nav>', page, re.S)
    assert header is not None, page[:3000]
    hrefs = re.findall(r'href="([^"]+)"', header.group(0))
    assert hrefs == [f"{jp_base_url}agnes/dashboards", f"{jp_base_url}agnes/logout"]
    assert "&larr; Dashboards" in header.group(0) and "Sign out" in header.group(0)
    assert "agnes-posthog-config" not in page
    # the id grant reaches the dashboard's kernel as the path grant does (voila_access)
    kid = kernel_id_of(page)
    assert (await get(jp_fetch, "api", "kernels", kid, headers=headers)).code == 200
    # the links, as the browser follows them: the index, and the sign-out confirmation
    index = await get(jp_fetch, *hrefs[0][len(jp_base_url) :].split("/"), headers=headers)
    assert index.code == 200 and "Sales dashboard" in index.body.decode()
    logout = await get(jp_fetch, *hrefs[1][len(jp_base_url) :].split("/"), headers=headers)
    assert logout.code == 200
    assert 'method="post"' in logout.body.decode().lower() and "_xsrf" in logout.body.decode()
    # the old path form still opens it too (SALES is what older stores hold)
    legacy = viewer(agnes, "legacy@example.com", SALES)
    assert (await render(jp_fetch, legacy))[0] == 200


async def test_removing_the_dashboard_grant_closes_its_kernel_socket(
    jp_fetch, jp_ws_fetch, agnes, agnes_data_dir
):
    """Revocation reaches a viewer's open dashboard socket (socket_revocation): the grant is
    removed by another process (the CLI); a socket that sends nothing closes within 5 s, and
    a message sent right after the removal is not answered."""
    import asyncio
    import time

    from server_extension.socket_revocation import CLOSE_CODE
    from tests.support.server_process import agnes_cli

    agnes.services.sockets.poll_interval_s = 1
    headers = viewer(agnes, "viewer@example.com", "sales", "team/ops")
    code, page = await render(jp_fetch, headers)
    assert code == 200, page[:2000]
    kid = kernel_id_of(page)
    busy = await jp_ws_fetch("api", "kernels", kid, "channels", headers=headers)
    idle = await jp_ws_fetch("api", "kernels", kid, "channels", headers=headers)
    busy.write_message(shell_msg("k1", "kernel_info_request", {}))
    while json.loads(await busy.read_message())["msg_type"] != "kernel_info_reply":
        pass

    agnes_cli("revoke-grant", "viewer-group", "dashboard", "sales",
              "--data-dir", str(agnes_data_dir))  # blocks this loop: no poll runs meanwhile
    busy.write_message(shell_msg("k2", "kernel_info_request", {}))
    for ws in (busy, idle):
        deadline = time.monotonic() + 5
        while (msg := await asyncio.wait_for(ws.read_message(), deadline - time.monotonic())):
            assert json.loads(msg)["parent_header"].get("msg_id") != "k2", "answered"
        assert (ws.close_code, ws.close_reason) == (CLOSE_CODE, "access revoked")
    # The viewer still has the other dashboard, and this one is closed to them.
    with pytest.raises(HTTPClientError) as refused:
        await jp_ws_fetch("api", "kernels", kid, "channels", headers=headers)
    assert refused.value.code == 403
