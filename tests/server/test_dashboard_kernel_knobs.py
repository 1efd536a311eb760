"""The dashboard kernel knobs: AGNES_VOILA_MAX_KERNELS_PER_USER and AGNES_VOILA_CULL_IDLE_S
are the defaults, config wins, and a bad value stops the server at startup."""

from __future__ import annotations

import pytest
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets import TraitError
from traitlets.config import Config

from jupyter_agnes.envknobs import env_whole_number
from server_extension.dashboard_kernels import (
    CULL_IDLE_DEFAULT_S,
    CULL_IDLE_KNOB,
    MAX_PER_USER_DEFAULT,
    MAX_PER_USER_KNOB,
    DashboardKernelLimits,
    check_dashboard_limits,
    cull_check_interval_s,
)
from server_extension.hub_identity import AgnesHubIdentityProvider
from server_extension.kernel_owners import KernelOwnership, with_kernel_ownership

# The server in this module is the hub's Agnes service (which also renders dashboards).
from tests.server.test_hub_api import agnes_extra_config  # noqa: F401
from tests.support.server_process import agnes_server

OwnedManager = with_kernel_ownership(AsyncMappingKernelManager)


def manager(tmp_path, config: Config | None = None) -> DashboardKernelLimits:
    km = OwnedManager(root_dir=str(tmp_path), config=config or Config())
    assert isinstance(km, DashboardKernelLimits)
    return km


def test_the_knobs_are_the_defaults_and_config_wins(monkeypatch, tmp_path):
    km = manager(tmp_path)
    assert km.dashboard_kernels_per_user == MAX_PER_USER_DEFAULT == 3
    assert km.dashboard_cull_idle_timeout == CULL_IDLE_DEFAULT_S == 600
    assert check_dashboard_limits(km) == (
        "dashboard kernels: at most 3 per user, shut down after 600 s without a connection"
    )
    monkeypatch.setenv(MAX_PER_USER_KNOB, " 1 ")
    monkeypatch.setenv(CULL_IDLE_KNOB, "0")  # 0: never culled (the per-user cap still holds)
    km = manager(tmp_path)
    assert (km.dashboard_kernels_per_user, km.dashboard_cull_idle_timeout) == (1, 0)
    assert check_dashboard_limits(km) == "dashboard kernels: at most 1 per user, never culled"
    for section in ("MappingKernelManager", "AsyncMappingKernelManager"):
        config = Config({section: {"dashboard_kernels_per_user": 7,
                                   "dashboard_cull_idle_timeout": 30}})
        km = manager(tmp_path, config)
        assert (km.dashboard_kernels_per_user, km.dashboard_cull_idle_timeout) == (7, 30)


@pytest.mark.parametrize(
    ("knob", "value", "minimum"),
    [
        (MAX_PER_USER_KNOB, "0", 1),
        (MAX_PER_USER_KNOB, "-2", 1),
        (MAX_PER_USER_KNOB, "lots", 1),
        (MAX_PER_USER_KNOB, "2.5", 1),
        (CULL_IDLE_KNOB, "-1", 0),
        (CULL_IDLE_KNOB, "10m", 0),
    ],
)
def test_a_bad_value_is_an_error_naming_the_knob(monkeypatch, tmp_path, knob, value, minimum):
    monkeypatch.setenv(knob, value)
    expected = f"{knob}={value!r} must be a whole number of at least {minimum}"
    with pytest.raises(TraitError) as refused:
        check_dashboard_limits(manager(tmp_path))
    assert str(refused.value) == expected
    with pytest.raises(ValueError, match="must be a whole number"):
        env_whole_number(knob, 5, minimum)


def test_bad_config_is_refused_too(tmp_path):
    for trait, value in (("dashboard_kernels_per_user", 0), ("dashboard_cull_idle_timeout", -1)):
        with pytest.raises(TraitError):
            check_dashboard_limits(manager(tmp_path, Config({"MappingKernelManager": {trait: value}})))


def test_both_mixins_are_composed_once_in_order():
    assert OwnedManager.__mro__[1:3] == (DashboardKernelLimits, KernelOwnership)
    assert with_kernel_ownership(OwnedManager) is OwnedManager
    # A class that already records owners gets only the limits (its start_kernel runs first).
    only_owners = type("OnlyOwners", (KernelOwnership, AsyncMappingKernelManager), {})
    composed = with_kernel_ownership(only_owners)
    assert composed.__mro__[1:3] == (DashboardKernelLimits, only_owners)
    assert check_dashboard_limits(AsyncMappingKernelManager()) is None


def test_idle_kernels_are_looked_for_often_enough():
    assert cull_check_interval_s(3) == 1.0
    assert cull_check_interval_s(60) == 15.0
    assert cull_check_interval_s(600) == 30.0


def test_a_server_with_a_bad_knob_refuses_to_start(tmp_path):
    with pytest.raises(RuntimeError) as failed:
        with agnes_server(tmp_path / "d", env={MAX_PER_USER_KNOB: "lots"}):
            pass
    message = str(failed.value)
    assert "exited with" in message, message
    assert (f"Agnes cannot start: {MAX_PER_USER_KNOB}='lots' must be a whole number of at "
            "least 1") in message


def test_the_hub_service_limits_its_dashboard_kernels_too(jp_serverapp):
    assert isinstance(jp_serverapp.identity_provider, AgnesHubIdentityProvider)
    assert check_dashboard_limits(jp_serverapp.kernel_manager) == (
        "dashboard kernels: at most 3 per user, shut down after 600 s without a connection"
    )
