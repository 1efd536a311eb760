"""Google sign-in through JupyterHub's own `/hub/oauth_login` and `/hub/oauth_callback`
handlers and error page: a real JupyterHub app (no proxy, no spawner) served in this
process, against the fake Google known only by its discovery URL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from jupyterhub.app import JupyterHub
from tornado.httpserver import HTTPServer
from traitlets.config import Config

from jupyter_agnes.auth.login_messages import LOGIN_ERRORS
from jupyter_agnes.hub import AgnesGoogleOAuthenticator
from jupyter_agnes.hub.google_handlers import DISCOVERY_UNAVAILABLE
from tests.fakes.google_server import CLIENT_ID, CLIENT_SECRET, FakeGoogle
from tests.support.server_process import free_port

pytestmark = pytest.mark.timeout(120)
GENERIC_403 = "not currently authorized"  # JupyterHub's custom_403_message default


def hub_config(tmp: Path, port: int, google_url: str) -> Config:
    c = Config()
    empty = tmp / "jupyterhub_config.py"  # not one from the working directory
    empty.write_text("")
    c.JupyterHub.config_file = str(empty)
    c.JupyterHub.db_url = f"sqlite:///{tmp / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret = os.urandom(32)
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = port
    c.ConfigurableHTTPProxy.auth_token = "unused-proxy-token"
    c.JupyterHub.authenticator_class = AgnesGoogleOAuthenticator
    c.AgnesGoogleOAuthenticator.update(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        oauth_callback_url=f"http://127.0.0.1:{port}/hub/oauth_callback",
    )
    c.GooglePolicyConfig.update(allowed_domains=["acme.com"], group_prefix="agnes-")
    c.GoogleOAuthSettings.update(  # only the discovery URL names Google's OAuth endpoints
        discovery_url=google_url + "/.well-known/openid-configuration",
        directory_url=google_url + "/admin/directory/v1",
        gce_metadata_url=google_url + "/computeMetadata/v1",
        admin_sdk_key_file="",
        mock_groups=[],
    )
    return c


@pytest.fixture(scope="module")
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle() as fake:
        yield fake


@contextlib.contextmanager
def running_hub(tmp: Path, google_url: str) -> Iterator[str]:
    """A JupyterHub app initialized and served on loopback in a thread; yields its URL."""
    port = free_port()
    config = hub_config(tmp, port, google_url)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []
    servers: list[HTTPServer] = []

    async def start() -> None:
        hub = JupyterHub(config=config)
        await hub.initialize([])
        server = HTTPServer(hub.tornado_application)
        server.listen(port, "127.0.0.1")
        servers.append(server)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:  # reported to the test thread
            failure.append(exc)
            return
        finally:
            ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(60), "the hub did not initialize"
    if failure:
        raise failure[0]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:  # also when a test fails: no hub thread or port outlives the module
        loop.call_soon_threadsafe(servers[0].stop)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture(scope="module")
def hub_url(tmp_path_factory: pytest.TempPathFactory, google: FakeGoogle) -> Iterator[str]:
    with running_hub(tmp_path_factory.mktemp("hub"), google.base_url) as url:
        yield url


def test_refused_user_sees_the_reason_on_the_hub_page(hub_url: str, google: FakeGoogle) -> None:
    google.set_user("eve@evil.com", groups=["agnes-bi@acme.com"])
    # The browser's whole trip: the hub's redirect, Google's consent, the hub's callback.
    page = requests.Session().get(hub_url + "hub/oauth_login", timeout=30)
    assert page.status_code == 403
    assert page.url.startswith(hub_url + "hub/oauth_callback")
    assert LOGIN_ERRORS["domain_not_allowed"] in page.text
    assert GENERIC_403 not in page.text

    google.set_user("bob@acme.com", groups=["sales@acme.com"])
    page = requests.Session().get(hub_url + "hub/oauth_login", timeout=30)
    assert page.status_code == 403
    assert LOGIN_ERRORS["not_in_allowed_group"] in page.text


def test_discovery_url_alone_carries_the_whole_sign_in(hub_url: str, google: FakeGoogle) -> None:
    google.set_user("ann@acme.com", groups=["agnes-bi@acme.com"])
    del google.requests[:]
    browser = requests.Session()
    to_google = browser.get(hub_url + "hub/oauth_login", allow_redirects=False, timeout=30)
    assert to_google.status_code == 302
    assert to_google.headers["Location"].startswith(google.base_url + "/o/oauth2/v2/auth?")
    to_hub = browser.get(to_google.headers["Location"], allow_redirects=False, timeout=30)
    callback = browser.get(to_hub.headers["Location"], allow_redirects=False, timeout=30)
    assert callback.status_code == 302, callback.text
    assert "jupyterhub-hub-login" in browser.cookies.get_dict()  # signed in at the hub
    seen = [(method, path) for method, path, _ in google.requests]
    assert ("POST", "/token") in seen
    assert ("GET", "/oauth2/v3/userinfo") in seen


def test_unreachable_google_leaves_the_hub_up_and_says_so(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with running_hub(tmp_path, nobody) as url:
        page = requests.get(url + "hub/oauth_login", allow_redirects=False, timeout=60)
        assert page.status_code == 503
        assert DISCOVERY_UNAVAILABLE in page.text
        assert requests.get(url + "hub/login", timeout=30).status_code == 200  # the hub runs
