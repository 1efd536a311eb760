"""The PostHog client against a fake PostHog on 127.0.0.1: opt-in, identity, flags, outages."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_agnes import observability
from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.observability import peek_client, people
from jupyter_agnes.observability.posthog_client import ObservabilitySettings
from tests.fakes.posthog_server import FakePostHog
from tests.support.obs_helpers import reset_observability, running_posthog

ROOT = Path(__file__).resolve().parents[2]
OBS_ENV = (
    "POSTHOG_API_KEY",
    "POSTHOG_HOST",
    "POSTHOG_IDENTIFY_PII",
    "POSTHOG_REPLAY",
    "POSTHOG_REPLAY_MASK_SELECTOR",
    "POSTHOG_LLM_PAYLOADS",
    "POSTHOG_LLM_PAYLOAD_MAX_CHARS",
    "POSTHOG_ENVIRONMENT",
    "LOCAL_DEV_MODE",
    "RELEASE_CHANNEL",
    "AGNES_DEPLOYMENT_ENV",
    "AGNES_VERSION",
)

ALICE = Principal(
    user_id=4242,
    email="alice@acme.com",
    name="Alice Liddell",
    groups=("staff",),
    is_admin=False,
    auth="session",
    credential_id="sess-1",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with reset_observability(monkeypatch, OBS_ENV):
        yield


@pytest.fixture
def ph() -> Iterator[FakePostHog]:
    with running_posthog() as fake:
        yield fake


def enable(ph: FakePostHog, **kw: object) -> ObservabilitySettings:
    settings = ObservabilitySettings(api_key="phc_testkey", host=ph.url, **kw)
    observability.configure(settings)
    return settings


# --- opt-in ------------------------------------------------------------------------------


def test_disabled_builds_nothing_and_sends_nothing(ph: FakePostHog) -> None:
    # A fresh interpreter: the posthog package is never imported, no thread starts.
    script = textwrap.dedent(
        f"""
        import sys, threading
        import os
        os.environ.pop("POSTHOG_API_KEY", None)
        os.environ["POSTHOG_HOST"] = {ph.url!r}
        from jupyter_agnes import observability as o
        from jupyter_agnes.observability.llm_tracing import trace_generation
        o.capture("x", {{"a": 1}})
        o.capture_exception(ValueError("boom"), component="cli")
        assert o.feature_enabled("f", None, True) is True
        assert o.feature_enabled("f", None, False) is False
        with trace_generation("anthropic", "claude") as t:
            t.set_output("hi")
        o.flush(); o.shutdown()
        assert "posthog" not in sys.modules, "posthog imported while disabled"
        assert threading.active_count() == 1, threading.enumerate()
        print("OK")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "OK" in out.stdout
    assert ph.requests == []


def test_disabled_never_constructs_posthog(monkeypatch: pytest.MonkeyPatch) -> None:
    import posthog

    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("posthog.Posthog constructed while disabled")

    monkeypatch.setattr(posthog, "Posthog", refuse)
    before = threading.active_count()
    observability.capture("evt", user=ALICE)
    observability.capture_exception(RuntimeError("x"), component="server")
    assert observability.feature_enabled("k", ALICE, True) is True
    observability.flush()
    assert peek_client() is None
    assert threading.active_count() == before


def test_blank_key_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTHOG_API_KEY", "   ")
    assert ObservabilitySettings().enabled is False


def test_non_project_key_warns_without_logging_it(
    ph: FakePostHog, caplog: pytest.LogCaptureFixture
) -> None:
    observability.configure(ObservabilitySettings(api_key="phx_secretpersonal", host=ph.url))
    with caplog.at_level("WARNING", logger="jupyter_agnes.observability"):
        observability.capture("evt")
    assert "phc_" in caplog.text
    assert "phx_secretpersonal" not in caplog.text


# --- settings and super-properties ---------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "environment", "release"),
    [
        ({}, "unknown", ""),
        ({"POSTHOG_ENVIRONMENT": "prod", "LOCAL_DEV_MODE": "1"}, "prod", ""),
        ({"LOCAL_DEV_MODE": "1", "RELEASE_CHANNEL": "beta"}, "local", "beta"),
        ({"RELEASE_CHANNEL": "beta", "AGNES_DEPLOYMENT_ENV": "staging"}, "beta", "beta"),
        ({"AGNES_DEPLOYMENT_ENV": "staging", "AGNES_VERSION": "1.2.3"}, "staging", "1.2.3"),
        ({"AGNES_VERSION": "1.2.3", "RELEASE_CHANNEL": "beta"}, "beta", "1.2.3"),
    ],
)
def test_environment_and_release_resolution(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], environment: str, release: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = ObservabilitySettings()
    assert (s.environment, s.release) == (environment, release)


def test_settings_defaults_and_bad_env(monkeypatch: pytest.MonkeyPatch) -> None:
    s = ObservabilitySettings()
    assert s.host == "https://eu.i.posthog.com"
    assert (s.identify_pii, s.replay, s.llm_payloads, s.llm_payload_max_chars) == (
        "email",
        True,
        False,
        30000,
    )
    monkeypatch.setenv("POSTHOG_IDENTIFY_PII", "everything")
    monkeypatch.setenv("POSTHOG_LLM_PAYLOAD_MAX_CHARS", "-5")
    monkeypatch.setenv("POSTHOG_HOST", "javascript:alert(1)")
    monkeypatch.setenv("POSTHOG_REPLAY", "0")
    s = ObservabilitySettings()
    assert s.identify_pii == "email"
    assert s.llm_payload_max_chars == 30000
    assert s.host == "https://eu.i.posthog.com"
    assert s.replay is False
    # A traitlet overrides the env.
    assert ObservabilitySettings(identify_pii="none").identify_pii == "none"


def test_every_event_carries_super_properties(
    ph: FakePostHog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTHOG_ENVIRONMENT", "staging")
    monkeypatch.setenv("AGNES_VERSION", "9.9.9")
    enable(ph)
    observability.capture("one", {"k": "v"}, user=ALICE)
    observability.capture("two")
    observability.capture_exception(ValueError("bad"), component="cli")
    observability.flush()
    events = ph.wait_for_events(lambda evs: len(evs) >= 3)
    for event in events:
        assert event["properties"]["environment"] == "staging"
        assert event["properties"]["release"] == "9.9.9"
    assert ph.named("one")[0]["properties"]["k"] == "v"
    assert ph.requests[0]["path"] == "/batch/"


# --- identify modes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expect_id", "present", "absent"),
    [
        ("none", False, [], ["4242", "alice@acme.com", "Alice Liddell"]),
        ("id", True, ["4242"], ["alice@acme.com", "Alice Liddell"]),
        ("email", True, ["4242", "alice@acme.com"], ["Alice Liddell"]),
        ("full", True, ["4242", "alice@acme.com", "Alice Liddell"], []),
    ],
)
def test_identify_modes(
    ph: FakePostHog, mode: str, expect_id: bool, present: list[str], absent: list[str]
) -> None:
    enable(ph, identify_pii=mode)
    # A caller passing user facts or its own id must not defeat `none`.
    observability.capture(
        "evt",
        {"email": ALICE.email, "user_id": ALICE.user_id},
        user=ALICE,
        distinct_id=str(ALICE.user_id),
    )
    observability.capture_exception(KeyError("k"), component="server", user=ALICE)
    observability.flush()
    events = ph.wait_for_events(lambda evs: len(evs) >= 2)
    for event in events:
        blob = json.dumps(event)
        if expect_id:
            assert event["distinct_id"] == "4242"
            assert event["properties"]["user_id"] == "4242"
        else:
            assert event["distinct_id"].startswith("agnes-anon-")
            assert event["properties"]["$process_person_profile"] is False
        for value in present:
            assert value in blob
        for value in absent:
            assert value not in blob, f"{value} leaked in mode {mode}"


def test_none_mode_ids_are_per_session() -> None:
    other_session = Principal(**{**ALICE.__dict__, "credential_id": "sess-2"})
    a = people.distinct_id_for(ALICE, "none")
    assert a == people.distinct_id_for(ALICE, "none")
    assert a != people.distinct_id_for(other_session, "none")
    assert "4242" not in a


# --- exceptions ----------------------------------------------------------------------------


def test_capture_exception_shape(ph: FakePostHog) -> None:
    enable(ph)
    try:
        raise ValueError("it broke")
    except ValueError as exc:
        observability.capture_exception(exc, component="orchestrator", properties={"src": "x"})
    observability.flush()
    [event] = ph.wait_for_events(lambda evs: len(evs) >= 1)
    props = event["properties"]
    assert event["event"] == "$exception"
    assert props["component"] == "orchestrator"
    assert props["src"] == "x"
    assert props["$exception_list"][0]["type"] == "ValueError"


# --- feature flags -------------------------------------------------------------------------


def test_feature_flag_success(ph: FakePostHog) -> None:
    enable(ph)
    ph.flags = {"new-ui": True, "old-ui": False}
    assert observability.feature_enabled("new-ui", ALICE, False) is True
    assert observability.feature_enabled("old-ui", ALICE, True) is False
    flag_posts = [r for r in ph.requests if r["path"].startswith("/flags")]
    assert flag_posts, "the flags endpoint was never asked"


def test_feature_flag_unknown_key_uses_default(ph: FakePostHog) -> None:
    enable(ph)
    ph.flags = {"other": True}
    assert observability.feature_enabled("missing", ALICE, True) is True
    assert observability.feature_enabled("missing", ALICE, False) is False


def test_feature_flag_error_uses_default(ph: FakePostHog) -> None:
    enable(ph)
    ph.flags = {"new-ui": True}
    ph.flags_mode = "error"
    assert observability.feature_enabled("new-ui", ALICE, False) is False
    assert observability.feature_enabled("new-ui", ALICE, True) is True


def test_feature_flag_timeout_uses_default(ph: FakePostHog) -> None:
    enable(ph)
    ph.flags = {"new-ui": True}
    ph.flags_mode = "hang"
    t0 = time.monotonic()
    assert observability.feature_enabled("new-ui", ALICE, False) is False
    assert time.monotonic() - t0 < 6.0  # 2 s budget, generous bound


def test_feature_flag_unreachable_host(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on port 9 of loopback: connection refused.
    observability.configure(ObservabilitySettings(api_key="phc_x", host="http://127.0.0.1:9"))
    assert observability.feature_enabled("k", ALICE, True) is True


# --- a dead PostHog never slows the caller -----------------------------------------------


def test_blackholed_host_does_not_block_capture(ph: FakePostHog) -> None:
    ph.blackhole = True
    enable(ph, max_queue_size=50)
    t0 = time.monotonic()
    for i in range(500):
        observability.capture("spam", {"i": i}, user=ALICE)
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0, f"500 captures took {elapsed:.2f}s against a black hole"
    # The queue is bounded: events beyond it are dropped, not buffered forever.
    client = peek_client()
    assert client._analytics_lane.queue.qsize() <= 50
    t0 = time.monotonic()
    observability.flush(0.5)
    observability.shutdown()
    assert time.monotonic() - t0 < 6.0
    ph.release.set()
