"""The sign-in page: "not configured" said once, the signed-out note, and a login-link hint
that names the running server's data dir only to someone on the server's own machine."""

from __future__ import annotations

import html
import re
import shlex
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests

from server_extension.pages import is_local_viewer, login_page
from tests.support.apihelpers import call, cookie_header
from tests.support.server_process import agnes_cli, agnes_server

NOT_CONFIGURED = "Google sign-in is not configured on this server."
SIGNED_OUT = "You are signed out."
COMMAND = re.compile(r'<code id="agnes-login-link-command">(.*?)</code>')


@pytest.fixture
def agnes_data_dir(tmp_path: Path) -> Path:
    # A space and a quote: the command on the page must still be one shell word for it.
    path = tmp_path / "agnes data's dir"
    path.mkdir(mode=0o700)
    return path


async def page(jp_fetch, query: str = "", headers: dict[str, str] | None = None) -> str:
    params = dict(parse_qsl(query))
    resp = await jp_fetch(
        "agnes", "login", params=params, headers=headers or {}, raise_error=False
    )
    assert resp.code == 200
    return resp.body.decode()


def shown_command(body: str) -> str:
    match = COMMAND.search(body)
    assert match, body
    return html.unescape(match.group(1))


async def test_not_configured_is_said_once_also_after_the_google_button(jp_fetch, agnes):
    resp = await call(jp_fetch, "agnes", "auth", "google", "login")
    assert resp.code == 302 and "error=google_not_configured" in resp.headers["Location"]
    body = await page(jp_fetch, "error=google_not_configured")
    assert body.count(NOT_CONFIGURED) == 1
    assert f'<p class="error" role="alert">{NOT_CONFIGURED}</p>' in body  # why they are here
    plain = await page(jp_fetch)
    assert plain.count(NOT_CONFIGURED) == 1 and 'role="alert"' not in plain


def test_a_stale_not_configured_code_is_not_shown_beside_the_google_button():
    body = login_page(error_code="google_not_configured", google_login_url="/g")
    assert NOT_CONFIGURED not in body and 'id="google-login"' in body
    other = login_page(error_code="link_invalid", google_login_url=None)
    assert other.count(NOT_CONFIGURED) == 1 and "That login link is invalid" in other


async def test_sign_out_lands_on_a_signed_out_note(jp_fetch, agnes, jp_base_url):
    value = agnes.session_cookie("leaving@example.com")
    resp = await call(
        jp_fetch, "agnes", "logout", method="POST", headers=cookie_header(value, "x1")
    )
    assert resp.code == 302
    location = urlsplit(resp.headers["Location"])
    assert location.path == f"{jp_base_url}agnes/login"
    assert parse_qs(location.query) == {"signed_out": ["1"]}
    body = await page(jp_fetch, location.query)
    assert f'<p class="notice" role="status">{SIGNED_OUT}</p>' in body
    assert SIGNED_OUT not in await page(jp_fetch)


@pytest.mark.parametrize(
    "query",
    [
        "signed_out=%3Cscript%3Ealert(1)%3C/script%3E",
        "signed_out=You%20are%20hacked",
        "signed_out=0",
        "error=%3Cb%3Ehi%3C/b%3E",
        "error=Your%20password%20expired",
    ],
)
async def test_query_parameters_never_put_their_own_text_on_the_page(jp_fetch, agnes, query):
    body = await page(jp_fetch, query)
    assert "<script>alert" not in body and "&lt;script" not in body
    assert "hacked" not in body and "<b>hi" not in body and "&lt;b&gt;" not in body
    assert "password expired" not in body
    assert SIGNED_OUT not in body and 'class="error"' not in body


async def test_the_hint_on_the_servers_machine_is_a_command_that_works(
    jp_fetch, agnes, agnes_data_dir, jp_base_url, tmp_path
):
    """`jupyter agnes login-link` with another data dir prints a dead link; the page's
    command, run as shown, prints a link that signs in to this server."""
    agnes.user("first@example.com", admin=True)
    command = shown_command(await page(jp_fetch))
    args = shlex.split(command.replace("you@example.com", "first@example.com"))
    assert args[:3] == ["jupyter", "agnes", "login-link"]
    assert args[args.index("--data-dir") + 1] == str(agnes_data_dir.resolve())
    link = agnes_cli(*args[2:], env={"AGNES_DATA_DIR": str(tmp_path / "elsewhere")}).stdout
    url = urlsplit(link.strip().splitlines()[-1])
    assert url.path == f"{jp_base_url}agnes/auth/link"
    resp = await jp_fetch(
        "agnes", "auth", "link", params=dict(parse_qsl(url.query)), follow_redirects=False,
        raise_error=False,
    )
    assert resp.code == 302 and "agnes_session=" in resp.headers["Set-Cookie"]


@pytest.mark.parametrize(
    "header",
    [
        {"X-Forwarded-For": "203.0.113.9"},
        {"Forwarded": "for=203.0.113.9"},
        {"X-Real-IP": "203.0.113.9"},
        {"X-Forwarded-Host": "agnes.example.com"},
    ],
)
async def test_a_proxied_viewer_gets_the_command_without_the_path(
    jp_fetch, agnes, agnes_data_dir, header
):
    body = await page(jp_fetch, headers=header)
    assert "--data-dir DATA_DIR" in shown_command(body)
    assert "agnes data" not in html.unescape(body)
    assert str(agnes_data_dir.parent) not in html.unescape(body)
    assert "exact command" in body


@pytest.mark.parametrize(
    ("ip", "headers", "local"),
    [
        ("127.0.0.1", {}, True),
        ("::1", {}, True),
        ("127.8.9.10", {}, True),
        ("192.0.2.2", {}, False),
        ("10.0.0.1", {}, False),
        ("", {}, False),
        (None, {}, False),
        ("localhost", {}, False),  # tornado gives addresses; a name is not trusted
        ("127.0.0.1", {"X-Forwarded-For": "127.0.0.1"}, False),
    ],
)
def test_is_local_viewer(ip, headers, local):
    assert is_local_viewer(ip, headers) is local


def test_a_real_non_loopback_request_gets_no_path(tmp_path: Path):
    """A server bound to every address, reached through this machine's own non-loopback
    address: the peer is not loopback, so the page must not name the data dir."""
    own = [a for a in _own_addresses() if not a.startswith("127.")]
    if not own:
        pytest.skip("this machine has no non-loopback IPv4 address")
    data_dir = tmp_path / "data"
    with agnes_server(data_dir, "--ip", "0.0.0.0") as server:
        port = urlsplit(server.url).port
        local = requests.get(f"{server.url}agnes/login", timeout=10).text
        assert shown_command(local).split("--data-dir ")[1].startswith(str(data_dir.resolve()))
        remote = requests.get(f"http://{own[0]}:{port}/agnes/login", timeout=10).text
        assert "--data-dir DATA_DIR" in shown_command(remote)
        assert str(data_dir.resolve()) not in remote and str(tmp_path) not in remote


def _own_addresses() -> list[str]:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.200", 9))  # no packet is sent; picks the outgoing address
            return [sock.getsockname()[0]]
        except OSError:
            return []
