"""A proxy declared in AGNES_TRUSTED_PROXIES relays other people even when it sends no
forwarding header: the sign-in page must not show them the data dir."""

from __future__ import annotations

import html
from typing import Any

import pytest

from tests.server.test_login_page import page, shown_command


@pytest.fixture
def agnes_extra_config() -> dict[str, Any]:
    return {"RateLimiter": {"trusted_proxies": ["127.0.0.1/32", "::1/128"]}}


async def test_a_trusted_proxy_on_loopback_gets_no_path(jp_fetch, agnes, agnes_data_dir):
    body = await page(jp_fetch)
    assert "--data-dir DATA_DIR" in shown_command(body)
    assert str(agnes_data_dir) not in html.unescape(body)
