"""What counts as loopback: LOCAL_DEV_MODE signs everyone in as an admin, so it may only
serve an address nobody else can reach."""

from __future__ import annotations

import pytest

from jupyter_agnes.urls import is_loopback_host


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.8.9.10", "::1"])
def test_loopback_hosts(host):
    assert is_loopback_host(host)


# "" is how jupyter-server spells `--ip='*'`: every interface.
@pytest.mark.parametrize(
    "host", ["", "*", "0.0.0.0", "::", "10.0.0.1", "example.com", "localhost.evil.com", "LOCALHOST "]
)
def test_every_interface_and_other_hosts_are_not_loopback(host):
    assert not is_loopback_host(host)
