"""How `server_extension.identity` classifies requests, in process: which paths are
JupyterLab's own pages (those carry no @authorized check, so the identity provider gates
them), which requests are a person viewing a page (redirected to the dashboards, not 403),
and what `/api/me` shows of a signed-in user (the base `User` fields, never the principal).
tests/server/ checks the same rules through a running server."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from jupyter_agnes.auth.principal import ALL_SCOPES, Principal
from server_extension.identity import (
    AgnesIdentityProvider,
    is_lab_path,
    is_page_view,
    user_for,
)

BASE = "/base/"


def handler(path: str, method: str = "GET", headers: dict[str, str] | None = None,
            base_url: str = BASE) -> Any:
    return SimpleNamespace(
        request=SimpleNamespace(method=method, path=path, headers=headers or {}),
        settings={"base_url": base_url},
    )


@pytest.mark.parametrize("prefix", ["lab", "tree", "notebooks", "edit", "doc", "consoles",
                                    "terminals"])
def test_lab_pages_are_lab_paths(prefix: str) -> None:
    assert is_lab_path(BASE + prefix, BASE)
    assert is_lab_path(BASE + prefix + "/x/y.ipynb", BASE)
    assert is_lab_path(BASE + prefix + "?reset", BASE)
    # the query ends at the first "?": one holding another (a `next` URL) is still the page
    assert is_lab_path(BASE + prefix + "?next=/x?y", BASE)
    assert not is_lab_path(BASE + prefix + "x", BASE)  # another page sharing the prefix
    assert not is_lab_path("/" + prefix, BASE)  # not under base_url


@pytest.mark.parametrize("path", ["/base/api/kernels", "/base/voila/render/a.ipynb",
                                  "/base/dashboards", "/base/", "/base/static/lab"])
def test_other_paths_are_not_lab_paths(path: str) -> None:
    assert not is_lab_path(path, BASE)
    assert not AgnesIdentityProvider.is_lab_page(handler(path))


def test_is_lab_page_uses_the_servers_base_url() -> None:
    assert AgnesIdentityProvider.is_lab_page(handler("/base/lab"))
    assert AgnesIdentityProvider.is_lab_page(handler("/lab", base_url="/"))
    assert not AgnesIdentityProvider.is_lab_page(handler("/lab"))
    no_base = SimpleNamespace(request=SimpleNamespace(path="/lab/tree"), settings={})
    assert AgnesIdentityProvider.is_lab_page(no_base)  # base_url defaults to "/"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_get_of_a_page_is_a_page_view(method: str) -> None:
    assert is_page_view(handler("/base/lab", method))
    assert is_page_view(handler("/base/lab/tree/a.ipynb", method))


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_other_methods_are_not_page_views(method: str) -> None:
    assert not is_page_view(handler("/base/lab", method))


def test_upgrades_apis_assets_and_sockets_are_not_page_views() -> None:
    assert not is_page_view(handler("/base/lab", headers={"Upgrade": "websocket"}))
    for segment in ("api", "extensions", "static", "websocket"):
        assert not is_page_view(handler(f"/base/lab/{segment}/x"))
        assert not is_page_view(handler(f"/base/{segment}/x"))
    assert is_page_view(handler("/base/lab/apis"))  # whole segments only


def test_page_view_paths_are_relative_to_base_url() -> None:
    # the base url itself may be named like an API segment
    assert is_page_view(handler("/api/lab", base_url="/api/"))
    assert not is_page_view(handler("/api/lab", base_url="/base/"))
    no_base = SimpleNamespace(request=SimpleNamespace(method="GET", path="/lab", headers={}),
                              settings={})
    assert is_page_view(no_base)


def person(name: str = "") -> Principal:
    return Principal(7, "ann@example.com", name, (), False, "session",
                     grants=frozenset({("lab", "*")}), scopes=ALL_SCOPES)


def test_user_for_names_the_person_and_carries_the_principal() -> None:
    named = user_for(person("Ann Example"))
    assert (named.username, named.name, named.display_name) == (
        "ann@example.com", "Ann Example", "Ann Example")
    assert named.principal == person("Ann Example")
    unnamed = user_for(person())
    assert (unnamed.username, unnamed.name, unnamed.display_name) == (
        "ann@example.com", "ann@example.com", "ann@example.com")


def test_api_me_shows_the_base_user_fields_never_the_principal() -> None:
    model = AgnesIdentityProvider().identity_model(user_for(person("Ann")))
    assert "principal" not in model
    assert model["username"] == "ann@example.com"
    assert model["name"] == model["display_name"] == "Ann"
    assert set(model) == {"username", "name", "display_name", "initials", "avatar_url",
                          "color"}


def test_no_shared_token_and_login_through_agnes() -> None:
    provider = AgnesIdentityProvider()
    assert provider.token == ""
    assert provider.need_token is False
    assert provider.updatable_fields == []
    assert provider.auth_enabled and provider.login_available
    routes = dict(provider.get_handlers())
    assert set(routes) == {"/login", "/logout"}
    assert routes["/login"].__name__ == "LoginRedirectHandler"
    assert routes["/logout"].__name__ == "LogoutHandler"


def test_only_a_bearer_request_is_token_authenticated() -> None:
    provider = AgnesIdentityProvider()
    request = handler("/base/lab")
    assert provider.is_token_authenticated(request) is False
    request._token_authenticated = True
    assert provider.is_token_authenticated(request) is True
