"""The hub's generated config (hub/config.configure) and `jupyter agnes hub`'s refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from traitlets.config import Config

from jupyter_agnes.cli import main
from jupyter_agnes.hub.config import HubSettings, configure, prepare_hub


def settings(data_dir: Path, google: bool) -> HubSettings:
    return HubSettings(str(data_dir), "127.0.0.1", 8000, 8081, 8001, 8002, "chp", google)


@pytest.mark.parametrize("google", [True, False])
def test_sign_ins_reach_the_store_the_service_reads(data_dir: Path, google: bool) -> None:
    s = settings(data_dir, google)
    prepare_hub(s)
    c = Config()
    configure(c, s)
    if google:
        assert c.JupyterHub.authenticator_class == "agnes-google"
        # The service finds people only in the store: without this, no Google user gets in.
        assert c.AgnesGoogleOAuthenticator.sync_store is True
        assert c.AgnesGoogleOAuthenticator.agnes_data_dir == str(data_dir)
    else:
        assert c.AgnesLinkAuthenticator.agnes_data_dir == str(data_dir)


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
