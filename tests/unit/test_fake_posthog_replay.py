"""The fake PostHog's replay side, which the browser replay test relies on: it decodes
rrweb snapshots as posthog-js packs them and serves recording off unless asked."""

from __future__ import annotations

import json

import pytest

from tests.fakes.posthog_server import FakePostHog, decode_snapshot


def test_decode_snapshot_expands_and_rejects() -> None:
    import gzip

    packed = gzip.compress(json.dumps({"node": {"id": 1}}).encode()).decode("latin-1")
    full = {"type": 2, "cv": "2024-10", "data": packed, "timestamp": 1}
    assert decode_snapshot(full) == {"type": 2, "data": {"node": {"id": 1}}, "timestamp": 1}
    mutation = {"type": 3, "cv": "2024-10",
                "data": {"source": 0, "adds": gzip.compress(b"[1]").decode("latin-1"),
                         "texts": [], "removes": None}}
    assert decode_snapshot(mutation)["data"]["adds"] == [1]
    plain = {"type": 4, "data": {"href": "x"}}
    assert decode_snapshot(plain) is plain
    with pytest.raises(OSError):  # not gzip: the fake records an error and keeps the item
        decode_snapshot({"type": 2, "cv": "2024-10", "data": "not gzip"})


def test_recording_off_by_default() -> None:
    with FakePostHog() as ph:
        assert ph.flags_body()["sessionRecording"] is False
    with FakePostHog(recording={"sampleRate": "1.00"}) as ph:
        rec = ph.flags_body()["sessionRecording"]
        assert rec["endpoint"] == "/s/" and rec["sampleRate"] == "1.00"
