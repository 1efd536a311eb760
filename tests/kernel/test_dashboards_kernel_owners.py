"""A Voila dashboard's kernel belongs to whoever rendered it (viewer or analyst)."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError

# The Voila server, its sample data and notebooks (fixtures), and request helpers.
from tests.kernel.test_dashboards_access import (  # noqa: F401
    SALES,
    agnes_extra_config,
    agnes_kernelspec,
    cookie,
    get,
    jp_root_dir,
    kernel_id_of,
    render,
    sample_analytics,
    viewer,
)


async def test_a_dashboard_kernel_is_its_renderers(jp_fetch, jp_ws_fetch, agnes):
    first = viewer(agnes, "first@example.com", SALES)
    second = viewer(agnes, "second@example.com", SALES)  # the same grant
    agnes.user("analyst@example.com", groups=("analysts",))
    agnes.grant("analysts", "lab", "*")
    analyst = cookie(agnes.session_cookie("analyst@example.com"))
    admin = cookie(agnes.session_cookie("root@example.com", admin=True))

    code, page = await render(jp_fetch, first)
    assert code == 200, page[:2000]
    kid = kernel_id_of(page)
    assert (await get(jp_fetch, "api", "kernels", kid, headers=first)).code == 200
    ws = await jp_ws_fetch("api", "kernels", kid, "channels", headers=first)
    ws.close()
    for other in (second, analyst):
        assert (await get(jp_fetch, "api", "kernels", kid, headers=other)).code == 403
        with pytest.raises(HTTPClientError) as refused:
            await jp_ws_fetch("api", "kernels", kid, "channels", headers=other)
        assert refused.value.code == 403
        shutdown = await get(jp_fetch, "voila", "api", "shutdown", kid, headers=other,
                             method="POST")
        assert shutdown.code == 403
    assert (await get(jp_fetch, "api", "kernels", kid, headers=admin)).code == 200

    # An analyst's own dashboard kernel is theirs, in the kernels list too.
    code, page = await render(jp_fetch, analyst)
    assert code == 200, page[:2000]
    own = kernel_id_of(page)
    listed = await get(jp_fetch, "api", "kernels", headers=analyst)
    assert [k["id"] for k in json.loads(listed.body)] == [own]
    assert (await get(jp_fetch, "api", "kernels", own, headers=analyst)).code == 200
