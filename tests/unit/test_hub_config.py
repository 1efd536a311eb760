"""The hub's generated config (hub/config.configure) and `jupyter agnes hub`'s refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from traitlets.config import Config

from jupyter_agnes.cli import build_parser, main
from jupyter_agnes.cli.common import CLIError
from jupyter_agnes.cli.hub import public_url_option
from jupyter_agnes.hub.config import HubSettings, configure, prepare_hub
from jupyter_agnes.hub.service_client import HUB_SECRET_ENV


def settings(data_dir: Path, google: bool) -> HubSettings:
    return HubSettings(str(data_dir), "127.0.0.1", 8000, 8081, 8001, 8002, "chp", google)


@pytest.mark.parametrize("google", [True, False])
def test_sign_ins_reach_the_store_through_the_service(data_dir: Path, google: bool) -> None:
    s = settings(data_dir, google)
    config_file = prepare_hub(s)
    c = Config()
    configure(c, s)
    if google:
        assert c.JupyterHub.authenticator_class == "agnes-google"
        # The service finds people only in the store: without this, no Google user gets in.
        assert c.AgnesGoogleOAuthenticator.sync_store is True
    else:
        assert c.JupyterHub.authenticator_class.endswith("AgnesLinkAuthenticator")
    # The hub asks the service on its loopback port, with the secret the service gets.
    assert c.AgnesServiceClient.api_url == "http://127.0.0.1:8002/services/agnes/"
    (service,) = c.JupyterHub.services
    secret = c.AgnesServiceClient.hub_secret
    assert len(secret) >= 40 and service["environment"][HUB_SECRET_ENV] == secret
    # Made anew at each start, and never written down.
    again = Config()
    configure(again, s)
    assert again.AgnesServiceClient.hub_secret != secret
    assert not any(secret in p.read_text() for p in (data_dir / "hub").iterdir() if p.is_file())
    assert secret not in config_file.read_text()


def test_google_hubs_re_check_the_policy_with_encrypted_auth_state(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyterhub.crypto import CryptKeeper

    from jupyter_agnes.hub.config import CRYPT_KEY_FILE

    monkeypatch.setenv("AGNES_HUB_REFRESH_S", "2.5")
    s = settings(data_dir, True)
    prepare_hub(s)
    c = Config()
    configure(c, s)
    key_file = data_dir / "hub" / CRYPT_KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    (key,) = c.CryptKeeper["keys"]  # a Config is a dict: .keys is its method
    assert key == key_file.read_text().strip()
    assert len(CryptKeeper(keys=[key]).keys[0]) == 32  # the hub accepts the hex key
    google = c.AgnesGoogleOAuthenticator
    assert google.enable_auth_state is True and google.refresh_pre_spawn is True
    assert google.auth_refresh_age == 3  # AGNES_HUB_REFRESH_S, rounded up to whole seconds
    # Made once: a restart keeps the key, so the stored auth state stays readable.
    again = Config()
    configure(again, s)
    assert again.CryptKeeper["keys"] == [key]
    # Login links keep no auth state.
    links = Config()
    configure(links, settings(data_dir, False))
    assert "enable_auth_state" not in links.AgnesGoogleOAuthenticator


def test_a_bad_refresh_interval_stops_the_hub_config(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from traitlets import TraitError

    monkeypatch.setenv("AGNES_HUB_REFRESH_S", "0")
    s = settings(data_dir, True)
    prepare_hub(s)
    with pytest.raises(TraitError, match="AGNES_HUB_REFRESH_S='0'"):
        configure(Config(), s)


def test_local_dev_mode_is_refused(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOCAL_DEV_MODE", "1")
    assert main(["hub", "--data-dir", str(data_dir)]) != 0
    assert "LOCAL_DEV_MODE=1 is for one server on loopback" in capsys.readouterr().err
    assert not (data_dir / "hub").exists()


def test_the_service_never_gets_the_per_user_service_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyter_agnes.hub.config import service_environment

    monkeypatch.setenv("AGNES_SERVICE_URL", "http://127.0.0.1:8000/services/agnes/")
    monkeypatch.setenv("AGNES_QUERY_MAX_ROWS", "5")
    env = service_environment()
    assert env.get("AGNES_QUERY_MAX_ROWS") == "5"  # other knobs are handed on
    assert "AGNES_SERVICE_URL" not in env


def test_public_url_defaults_to_the_listening_address(data_dir: Path) -> None:
    local = settings(data_dir, False)
    assert local.public_url == "http://127.0.0.1:8000/"
    every = HubSettings(str(data_dir), "0.0.0.0", 8000, 8081, 8001, 8002, "chp", False)
    assert every.public_url == "http://127.0.0.1:8000/"  # as before --public-url
    v6 = HubSettings(str(data_dir), "::1", 8000, 8081, 8001, 8002, "chp", False)
    assert v6.public_url == "http://[::1]:8000/"


def test_public_url_option_sets_the_urls_people_use(data_dir: Path) -> None:
    args = build_parser().parse_args(
        ["hub", "--ip", "0.0.0.0", "--public-url", "https://agnes.example.com"]
    )
    public = public_url_option(args.public_url)
    assert public == "https://agnes.example.com/"
    s = HubSettings(
        str(data_dir), "0.0.0.0", 8000, 8081, 8001, 8002, "chp", True, external_url=public
    )
    prepare_hub(s)
    c = Config()
    configure(c, s)
    assert c.AgnesGoogleOAuthenticator.oauth_callback_url == (
        "https://agnes.example.com/hub/oauth_callback"
    )
    command = c.JupyterHub.services[0]["command"]
    assert command[command.index("--hub-url") + 1] == "https://agnes.example.com/hub/"
    assert build_parser().parse_args(["hub"]).public_url is None  # default: as before


@pytest.mark.parametrize(
    "bad",
    [
        "agnes.example.com",  # no scheme
        "ftp://agnes.example.com/",
        "https:///nohost",
        "https://agnes.example.com/?next=/x",
        "https://agnes.example.com/#top",
        "https://user:pw@agnes.example.com/",
        "https://agnes.example.com/sub/",  # the hub serves at the root
        "https://agnes.example.com:99999/",
    ],
)
def test_a_bad_public_url_is_a_clear_cli_error(
    bad: str, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(CLIError, match="--public-url"):
        public_url_option(bad)
    assert main(["hub", "--data-dir", str(data_dir), "--public-url", bad]) != 0
    assert "--public-url" in capsys.readouterr().err
    assert not (data_dir / "hub").exists()


@pytest.mark.parametrize(
    ("ip", "service_url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8002/services/agnes/"),  # the service's own port
        ("0.0.0.0", "http://127.0.0.1:8002/services/agnes/"),
        ("::", "http://127.0.0.1:8002/services/agnes/"),
        ("10.1.2.3", "http://127.0.0.1:8002/services/agnes/"),
    ],
)
def test_per_user_servers_reach_the_service_on_loopback(
    data_dir: Path, ip: str, service_url: str
) -> None:
    s = HubSettings(
        str(data_dir), ip, 8000, 8081, 8001, 8002, "chp", False,
        external_url="http://hub.example.com/",
    )
    prepare_hub(s)
    c = Config()
    configure(c, s)
    assert c.AgnesLocalSpawner.agnes_service_url == service_url


def test_the_hub_keeps_its_loopback_ports_across_restarts(tmp_path: Path) -> None:
    """Servers left running call the hub's API where they were started; a port of the last
    run that only has connections in TIME_WAIT is reused, one with a listener is not."""
    import json
    import socket
    import time

    from jupyter_agnes.cli.hub import PORT_NAMES, PORTS_FILE, loopback_ports

    first = loopback_ports(tmp_path)
    assert sorted(first) == sorted(PORT_NAMES) and len(set(first.values())) == 3
    (tmp_path / PORTS_FILE).write_text(json.dumps(first))
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", first["hub_port"]))
        listener.listen()
        client = socket.create_connection(("127.0.0.1", first["hub_port"]))
        accepted, _ = listener.accept()
        assert loopback_ports(tmp_path)["hub_port"] != first["hub_port"]  # someone listens
        accepted.close()  # the hub's side closes first: its port is left in TIME_WAIT
        time.sleep(0.05)
        client.close()
    assert loopback_ports(tmp_path) == first
