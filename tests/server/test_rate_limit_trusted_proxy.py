"""X-Forwarded-For is believed from a trusted proxy: each client gets its own bucket."""

from __future__ import annotations

import pytest

from tests.support.apihelpers import call

BAD = "Bearer agnes_pat_" + "Z" * 43


@pytest.fixture
def agnes_extra_config():
    return {"RateLimiter": {"per_minute": 2, "trusted_proxies": ["127.0.0.1/32", "::1"]}}


async def test_trusted_proxy_forwards_client_ips(jp_fetch):
    for i in range(5):
        headers = {"Authorization": BAD, "X-Forwarded-For": f"198.51.100.{i}"}
        resp = await call(jp_fetch, "agnes", "api", "me", headers=headers)
        assert resp.code == 401  # a new client each time: never limited
    for _ in range(2):
        await call(jp_fetch, "agnes", "api", "me",
                   headers={"Authorization": BAD, "X-Forwarded-For": "198.51.100.77"})
    resp = await call(jp_fetch, "agnes", "api", "me",
                      headers={"Authorization": BAD, "X-Forwarded-For": "198.51.100.77"})
    assert resp.code == 429
