"""The server adapter's access decisions in process: `AgnesAuthorizer.is_authorized` and
Voila's routes (server_extension/voila_access.py), without a server or a kernel process.

The kernel manager is the real one with Agnes' ownership mixed in; its kernels are real
jupyter_client managers that are registered but never started, carrying the owner and the
launch environment a request or a Voila render would have left on them. The handler is the
few attributes the decisions read (method, path, path kwargs, settings, current user).
tests/server/test_lab_isolation.py and tests/kernel/test_dashboards_access.py check the
same rules end to end with running kernels; these are the fast guards mutation testing uses.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from jupyter_client.manager import AsyncKernelManager
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

from jupyter_agnes.auth.principal import ALL_SCOPES, Principal
from server_extension.authorizer import AgnesAuthorizer
from server_extension.dashboard_kernels import VOILA_LAUNCH_MARK
from server_extension.kernel_owners import OWNER_ATTRIBUTE, with_kernel_ownership
from server_extension.voila_access import kernel_request_allowed, voila_decision

BASE = "/base/"
OWNER, OTHER, ADMIN = 7, 8, 9
SALES = "dashboards/sales.ipynb"


def principal(user_id: int = OWNER, *, lab: bool = False, admin: bool = False,
              dashboards: tuple[str, ...] = ()) -> Principal:
    grants = {("dashboard", d) for d in dashboards} | ({("lab", "*")} if lab else set())
    return Principal(user_id, f"u{user_id}@example.com", "", (), admin, "session",
                     grants=frozenset(grants), scopes=ALL_SCOPES)


def kernel_manager() -> Any:
    return with_kernel_ownership(AsyncMappingKernelManager)()


def add_kernel(km: Any, owner: int | None, render: str | None = None) -> str:
    """Register a kernel as started by `owner`; `render`: the dashboard Voila rendered."""
    kernel_id = str(uuid.uuid4())
    kernel = AsyncKernelManager()
    setattr(kernel, OWNER_ATTRIBUTE, owner)
    if render is not None:
        env = {VOILA_LAUNCH_MARK: "1", "SCRIPT_NAME": f"{BASE}voila/render/{render}"}
        kernel._launch_args = {"env": env}
    km._kernels[kernel_id] = kernel
    return kernel_id


def handler(path: str, *, km: Any = None, method: str = "GET", user: Any = None,
            kernel_id: str | None = None) -> Any:
    kwargs = {"kernel_id": kernel_id} if kernel_id else {}
    return SimpleNamespace(
        request=SimpleNamespace(method=method, path=BASE + path),
        settings={"base_url": BASE, "kernel_manager": km},
        path_kwargs=kwargs,
        current_user=user,
    )


def authorized(who: Principal | None, action: str, resource: str, h: Any) -> bool:
    user = SimpleNamespace(principal=who) if who is not None else None
    h.current_user = user
    return AgnesAuthorizer().is_authorized(h, user, action, resource)


def test_no_principal_is_refused_everything() -> None:
    h = handler("api/contents")
    for resource in ("identity", "contents", "kernels"):
        assert authorized(None, "read", resource, h) is False
    # a user object without a principal, on a request without one either
    h.current_user = None
    assert AgnesAuthorizer().is_authorized(h, SimpleNamespace(), "read", "identity") is False


def test_a_foreign_providers_user_is_judged_by_the_requests_principal() -> None:
    """Under another identity provider (JupyterHub) the user carries no principal: the
    one principal_of found for the request (left on it) decides."""
    for lab, expected in ((True, True), (False, False)):
        h = handler("api/contents")
        hub_user = SimpleNamespace(username="u7")
        h.current_user = hub_user
        h.request.agnes_principal = principal(lab=lab)
        assert AgnesAuthorizer().is_authorized(h, hub_user, "read", "contents") is expected


def test_the_user_asked_about_is_judged() -> None:
    """`is_authorized(handler, user, ...)` decides for `user`, whatever the request's own."""
    h = handler("api/contents")
    h.current_user = None
    lab_user = SimpleNamespace(principal=principal(lab=True))
    assert AgnesAuthorizer().is_authorized(h, lab_user, "read", "contents") is True


@pytest.mark.parametrize("action", ["read", "write", "execute"])
def test_signed_in_resources_need_no_lab(action: str) -> None:
    viewer = principal()
    assert authorized(viewer, action, "identity", handler("api/me")) is True
    for resource in ("contents", "sessions", "terminals", "kernelspecs", "another_extension"):
        assert authorized(viewer, action, resource, handler("api/x")) is False, resource
        assert authorized(principal(lab=True), action, resource, handler("api/x")) is True


def test_someone_elses_kernel_is_refused_whatever_the_grants() -> None:
    km = kernel_manager()
    mine, theirs, ownerless = add_kernel(km, OWNER), add_kernel(km, OTHER), add_kernel(km, None)
    analyst = principal(lab=True)

    def may(who: Principal, kernel_id: str) -> bool:
        path = f"api/kernels/{kernel_id}"
        return authorized(who, "execute", "kernels", handler(path, km=km, kernel_id=kernel_id))

    assert may(analyst, mine) is True
    assert may(analyst, theirs) is False
    assert may(analyst, ownerless) is False  # the admins' (rbac.may_use_kernel)
    admin = principal(ADMIN, admin=True)
    assert all(may(admin, k) for k in (mine, theirs, ownerless))
    # an id no kernel has passes, so jupyter-server answers its own 404
    assert may(analyst, str(uuid.uuid4())) is True


def test_a_viewer_reaches_only_the_kernel_voila_started_for_their_dashboard() -> None:
    km = kernel_manager()
    voila = add_kernel(km, OWNER, render=SALES)
    theirs = add_kernel(km, OTHER, render=SALES)
    plain = add_kernel(km, OWNER)
    other_board = add_kernel(km, OWNER, render="dashboards/costs.ipynb")
    viewer = principal(dashboards=("sales",))

    def request(path: str, method: str = "GET", kernel_id: str | None = None) -> bool:
        h = handler(path, km=km, method=method, kernel_id=kernel_id)
        return authorized(viewer, "execute", "kernels", h)

    assert request(f"api/kernels/{voila}") is True
    assert request(f"api/kernels/{voila}/channels") is True
    # only GET and the websocket, on exactly that route
    assert request(f"api/kernels/{voila}", method="DELETE") is False
    assert request(f"api/kernels/{voila}/interrupt", method="GET") is False
    assert request(f"api/kernels/{voila}/channels/x") is False
    assert request("api/kernels") is False
    # another user's Voila kernel of the same dashboard (the route's own kernel_id check)
    assert request(f"api/kernels/{theirs}", kernel_id=theirs) is False
    assert request(f"api/kernels/{theirs}") is False  # and Voila's rule alone refuses it
    assert request(f"api/kernels/{plain}") is False  # not started by Voila
    assert request(f"api/kernels/{other_board}") is False  # no grant for that dashboard
    # the same route for another resource is not a kernel request
    assert authorized(viewer, "read", "contents", handler(f"api/kernels/{voila}", km=km)) is False


def test_kernel_request_allowed_reads_the_path_below_base_url() -> None:
    km = kernel_manager()
    voila = add_kernel(km, OWNER, render=SALES)
    viewer = principal(dashboards=("sales",))
    outside = handler("", km=km)
    outside.request.path = f"/other/api/kernels/{voila}"
    assert kernel_request_allowed(outside, viewer) is False
    assert kernel_request_allowed(handler(f"api/kernels/{voila}", km=km), viewer) is True
    upper = voila.upper()  # ids are hex in either case
    km._kernels[upper] = km._kernels.pop(voila)
    assert kernel_request_allowed(handler(f"api/kernels/{upper}", km=km), viewer) is True
    assert kernel_request_allowed(handler(f"api/kernels/{upper}x", km=km), viewer) is False


def test_voila_kernel_needs_the_render_under_this_base_url() -> None:
    km = kernel_manager()
    voila = add_kernel(km, OWNER, render=SALES)
    km.get_kernel(voila)._launch_args["env"]["SCRIPT_NAME"] = f"/elsewhere/voila/render/{SALES}"
    viewer = principal(dashboards=("sales",))
    assert kernel_request_allowed(handler(f"api/kernels/{voila}", km=km), viewer) is False
    quoted = add_kernel(km, OWNER, render="dashboards/sales%20q3.ipynb")
    spaced = principal(dashboards=("sales q3",))
    assert kernel_request_allowed(handler(f"api/kernels/{quoted}", km=km), spaced) is True
    no_manager = handler(f"api/kernels/{voila}", km=None)
    assert kernel_request_allowed(no_manager, viewer) is False


@pytest.mark.parametrize(("path", "viewer_may", "analyst_may"), [
    ("api/contents", None, None),  # not Voila: the authorizer decides
    ("voilax", None, None),
    ("voila", False, True),  # the tree: Lab users only
    ("voila/", False, True),
    ("voila/tree/dashboards", False, True),
    ("voila/api/contents", False, True),
    (f"voila/render/{SALES}", True, True),
    ("voila/render/dashboards/sales%2Eipynb", True, True),  # decoded before the check
    ("voila/render/dashboards/costs.ipynb", False, True),
    ("voila/render/dashboards/../sales.ipynb", False, False),
    ("voila/files/dashboards/chart.png", True, True),  # next to a granted dashboard
    ("voila/files/dashboards/costs.ipynb", False, True),
    ("voila/static/voila.js", True, True),
    ("voila/templates/lab/index.css", True, True),
    ("voila/labextensions/x/remoteEntry.js", True, True),
    ("voila/api/themes/light.css", True, True),
    ("voila/statics/x.js", False, True),
])
def test_voila_routes(path: str, viewer_may: bool | None, analyst_may: bool | None) -> None:
    viewer = principal(dashboards=("sales",))
    analyst = principal(lab=True)
    assert voila_decision(handler(path), viewer) is viewer_may
    assert voila_decision(handler(path), analyst) is analyst_may


def test_voila_kernel_routes_are_the_owners_voila_kernels() -> None:
    km = kernel_manager()
    voila = add_kernel(km, OWNER, render=SALES)
    theirs = add_kernel(km, OTHER, render=SALES)
    viewer = principal(dashboards=("sales",))
    for route in ("api/shutdown", "execution"):
        assert voila_decision(handler(f"voila/{route}/{voila}", km=km), viewer) is True
        assert voila_decision(handler(f"voila/{route}/{theirs}", km=km), viewer) is False
        assert voila_decision(handler(f"voila/{route}/{voila}/x", km=km), viewer) is False
    stranger = principal(OTHER)
    assert voila_decision(handler(f"voila/execution/{theirs}", km=km), stranger) is False


def test_a_path_outside_base_url_is_not_voilas() -> None:
    outside = handler("")
    outside.request.path = "/else/voila/static/voila.js"  # "/else/" is as long as BASE
    assert voila_decision(outside, principal(lab=True)) is None


def test_a_server_at_the_root_when_settings_name_no_base_url() -> None:
    km = kernel_manager()
    voila = add_kernel(km, OWNER, render=SALES)
    km.get_kernel(voila)._launch_args["env"]["SCRIPT_NAME"] = f"/voila/render/{SALES}"
    viewer = principal(dashboards=("sales",))

    def at_root(path: str) -> Any:
        h = handler("", km=km)
        h.request.path = path
        del h.settings["base_url"]
        return h

    assert voila_decision(at_root(f"/voila/render/{SALES}"), viewer) is True
    assert voila_decision(at_root("/voila/tree"), viewer) is False
    assert kernel_request_allowed(at_root(f"/api/kernels/{voila}"), viewer) is True


def test_a_kernel_not_marked_as_voilas_is_refused_whatever_its_script_name() -> None:
    km = kernel_manager()
    kernel_id = add_kernel(km, OWNER, render=SALES)
    del km.get_kernel(kernel_id)._launch_args["env"][VOILA_LAUNCH_MARK]
    viewer = principal(dashboards=("sales",))
    assert kernel_request_allowed(handler(f"api/kernels/{kernel_id}", km=km), viewer) is False
