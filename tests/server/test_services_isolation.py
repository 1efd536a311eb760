"""Two Agnes servers in one process keep their own wiring: PostHog client, snippet
settings, error capture, store. Nothing of one leaks into the other or into the
process-wide instance kernels and the CLI use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tornado.web
from traitlets.config import Config, Configurable

from jupyter_agnes import observability
from jupyter_agnes.observability import Observability, ObservabilitySettings
from jupyter_agnes.store.engine import open_store
from server_extension.error_capture import uninstall_error_capture
from server_extension.html_snippet import install_posthog
from server_extension.services import SETTINGS_KEY, AgnesServices, build_services
from tests.fakes.posthog_server import FakePostHog
from tests.support.observability_tornado import TornadoThread

PAGE = b"<html><head><title>t</title></head><body>hi</body></html>"


class Page(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.write(PAGE)


class Crash(tornado.web.RequestHandler):
    def get(self) -> None:
        raise RuntimeError(f"crash in {self.settings['label']}")


def services_for(data_dir: Path, posthog: dict[str, Any] | None) -> AgnesServices:
    data_dir.mkdir(mode=0o700)
    app = Configurable(config=Config({"ObservabilitySettings": posthog or {"api_key": ""}}))
    return build_services(app, data_dir, open_store(data_dir))


def server(services: AgnesServices, label: str) -> TornadoThread:
    app = tornado.web.Application(
        [(r"/page", Page), (r"/crash", Crash)], label=label, **{SETTINGS_KEY: services}
    )
    install_posthog(app, services.observability.settings, "/")
    return TornadoThread(app)


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[FakePostHog, AgnesServices, AgnesServices]]:
    observability.configure(None)
    with FakePostHog() as ph:
        on = services_for(tmp_path / "a", {"api_key": "phc_a", "host": ph.url})
        off = services_for(tmp_path / "b", None)
        try:
            yield ph, on, off
        finally:
            on.close()
            off.close()
            uninstall_error_capture()


def test_each_server_reports_to_its_own_posthog(
    two_servers: tuple[FakePostHog, AgnesServices, AgnesServices],
) -> None:
    ph, on, off = two_servers
    assert on.observability is not off.observability
    assert on.store is not off.store and on.ratelimiter is not off.ratelimiter
    with server(on, "a") as a, server(off, "b") as b:
        page_a = httpx.get(a.url + "/page", timeout=30)
        page_b = httpx.get(b.url + "/page", timeout=30)
        assert httpx.get(b.url + "/crash", timeout=30).status_code == 500
        assert httpx.get(a.url + "/crash", timeout=30).status_code == 500
    assert b'id="agnes-posthog-config"' in page_a.content
    assert page_b.content == PAGE  # the PostHog-less server's pages stay untouched
    on.observability.flush()
    ph.wait_for_events(lambda evs: any(e["event"] == "$exception" for e in evs))
    messages = [
        e["properties"]["$exception_list"][0]["value"] for e in ph.named("$exception")
    ]
    assert messages == ["crash in a"]  # b's crash went nowhere
    assert off.observability.peek_client() is None
    # Kernels' and the CLI's instance was never built by either server.
    assert observability.peek_client() is None


def test_two_observability_objects_do_not_share_a_client() -> None:
    with FakePostHog() as one, FakePostHog() as two:
        first = Observability(ObservabilitySettings(api_key="phc_1", host=one.url))
        second = Observability(ObservabilitySettings(api_key="phc_2", host=two.url))
        try:
            first.capture("to-one")
            second.capture("to-two")
            first.flush()
            second.flush()
            one.wait_for_events(lambda evs: any(e["event"] == "to-one" for e in evs))
            two.wait_for_events(lambda evs: any(e["event"] == "to-two" for e in evs))
            assert [e["event"] for e in one.events] == ["to-one"]
            assert [e["event"] for e in two.events] == ["to-two"]
            first.shutdown()
            assert first.peek_client() is None and second.peek_client() is not None
        finally:
            first.shutdown()
            second.shutdown()
