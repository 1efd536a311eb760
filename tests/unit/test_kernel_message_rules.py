"""Which kernel websocket message a dashboard viewer sends (server_extension/kernel_guard.py):
`incoming_channel_and_type` reads the channel and type from each wire format jupyter-server
speaks, and anything it cannot read is None, which the guard refuses. In process; the guard
itself, on a real kernel's websocket, is tests/kernel/test_dashboards_access.py."""

from __future__ import annotations

import json

import pytest
from jupyter_server.services.kernels.connection.base import (
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)

from server_extension.kernel_guard import (
    V1_PROTOCOL,
    VIEWER_MESSAGE_TYPES,
    incoming_channel_and_type,
    offset_table_fits,
)


def message(msg_type: str, channel: str | None = "shell") -> dict:
    msg = {"header": {"msg_type": msg_type, "msg_id": "1"}, "parent_header": {},
           "metadata": {}, "content": {}, "buffers": []}
    if channel is not None:
        msg["channel"] = channel
    return msg


def test_viewer_message_types_are_widget_traffic_and_kernel_info_only() -> None:
    assert VIEWER_MESSAGE_TYPES == {"kernel_info_request", "comm_info_request", "comm_open",
                                    "comm_msg", "comm_close"}


@pytest.mark.parametrize("channel", ["shell", "control", "stdin"])
@pytest.mark.parametrize("msg_type", ["execute_request", "comm_msg"])
def test_the_legacy_json_format(channel: str, msg_type: str) -> None:
    text = json.dumps(message(msg_type, channel))
    assert incoming_channel_and_type(text, None) == (channel, msg_type)
    assert incoming_channel_and_type(text, "") == (channel, msg_type)


def test_a_json_message_without_a_channel_is_for_shell() -> None:
    for msg in (message("execute_request", None), message("execute_request", "")):
        assert incoming_channel_and_type(json.dumps(msg), None) == ("shell", "execute_request")


def test_the_legacy_binary_format() -> None:
    raw = serialize_binary_message(message("execute_request", "control"))
    assert incoming_channel_and_type(raw, None) == ("control", "execute_request")


def test_the_v1_protocol() -> None:
    msg = message("comm_open")
    parts = [json.dumps(msg[key]).encode() for key in ("header", "parent_header", "metadata",
                                                       "content")]
    raw = serialize_msg_to_ws_v1(parts, "iopub")
    assert incoming_channel_and_type(raw, V1_PROTOCOL) == ("iopub", "comm_open")
    # the same bytes read as the legacy format are not a message
    assert incoming_channel_and_type(raw, None) is None


@pytest.mark.parametrize("raw", [
    "not json", "{}", '{"header": {}}', "[]", b"\x00\x00", b"", json.dumps({"channel": "shell"}),
])
def test_unreadable_messages_are_none(raw: str | bytes) -> None:
    assert incoming_channel_and_type(raw, None) is None
    assert incoming_channel_and_type(raw, V1_PROTOCOL) is None


def test_a_v1_frame_with_many_buffers_is_read() -> None:
    # widget messages carry binary buffers: a frame of many (here empty) parts is a message
    header = json.dumps({"msg_type": "comm_msg"}).encode()
    raw = serialize_msg_to_ws_v1([header, b"{}", b"{}", b"{}", *[b""] * 30], "shell")
    assert incoming_channel_and_type(raw, V1_PROTOCOL) == ("shell", "comm_msg")


def test_a_frame_announcing_more_offsets_than_it_holds_is_refused_at_once() -> None:
    """jupyter-server's parsers trust the count: 2**64 - 1 v1 offsets would loop until memory
    runs out, 2**31 - 1 legacy parts build a 2 GB format string (a viewer stalling the server)."""
    frame = serialize_msg_to_ws_v1([json.dumps({"msg_type": "comm_msg"}).encode()], "shell")
    assert incoming_channel_and_type(b"\xff" * 8 + frame[8:], V1_PROTOCOL) is None
    legacy = serialize_binary_message(message("comm_msg"))
    assert incoming_channel_and_type(b"\x7f\xff\xff\xff" + legacy[4:], None) is None


def test_an_offset_table_fits_when_the_frame_holds_all_of_it() -> None:
    # v1: an 8-byte little-endian count, then that many 8-byte offsets
    v1 = (1).to_bytes(8, "little") + (16).to_bytes(8, "little")
    assert offset_table_fits(v1, 8, "little")
    assert not offset_table_fits(v1[:-1], 8, "little")
    assert not offset_table_fits((2).to_bytes(8, "little") + v1[8:], 8, "little")
    # legacy binary: a 4-byte big-endian count, then that many 4-byte offsets
    legacy = (1).to_bytes(4, "big") + (8).to_bytes(4, "big")
    assert offset_table_fits(legacy, 4, "big")
    assert not offset_table_fits(legacy[:-1], 4, "big")
    assert not offset_table_fits((2).to_bytes(4, "big") + legacy[4:], 4, "big")
    assert not offset_table_fits(b"", 4, "big")
