"""Rate limits on failed bearer auth through a real server: 429, Retry-After, XFF trust."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from jupyter_agnes.auth.principal import Operator
from jupyter_agnes.store.models import AuditEntry
from tests.support.apihelpers import bearer, call

BAD = "Bearer agnes_pat_" + "Z" * 43


@pytest.fixture
def agnes_extra_config():
    return {"RateLimiter": {"per_minute": 3, "trusted_proxies": []}}


async def test_failed_bearer_attempts_hit_429_with_retry_after(jp_fetch, agnes):
    good = agnes.pat("ok@example.com")
    for _ in range(3):
        resp = await call(jp_fetch, "agnes", "api", "me", headers={"Authorization": BAD})
        assert resp.code == 401
    resp = await call(jp_fetch, "agnes", "api", "me", headers={"Authorization": BAD})
    assert resp.code == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert json.loads(resp.body)["reason"] == "Too Many Requests"
    # Behind a shared NAT the team shares that IP: a valid token still gets in (a PAT is
    # 256 random bits: no guess is lucky), and the failures stay refused.
    for _ in range(3):
        resp = await call(jp_fetch, "agnes", "api", "me", headers=bearer(good))
        assert resp.code == 200 and json.loads(resp.body)["email"] == "ok@example.com"
        resp = await call(jp_fetch, "agnes", "api", "me", headers={"Authorization": BAD})
        assert resp.code == 429
    # a revoked (known, once valid) token is a failure like any other: 429, no reason
    revoked = agnes.pat("gone@example.com")
    agnes.auth.revoke_token(
        agnes.auth.list_tokens(agnes.user("gone@example.com"))[0]["id"], None, Operator()
    )
    resp = await call(jp_fetch, "agnes", "api", "me", headers=bearer(revoked))
    assert resp.code == 429 and "revoked" not in resp.body.decode().lower()
    # unauthenticated health is unaffected
    assert (await call(jp_fetch, "agnes", "api", "health")).code == 200
    # two refusals, one audit row: a flood costs one row per client and route per minute
    assert agnes.store.audit_queue.flush(timeout=30)
    with agnes.store.read() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == "auth.rate_limited")).all()
    assert [(r.resource, r.result) for r in rows] == [("route:bearer", "rate_limited")]
    assert rows[0].params == {"ip": "127.0.0.1", "route": "bearer", "per_minute": 3}


async def test_spoofed_forwarded_for_from_untrusted_peer_does_not_rotate_buckets(jp_fetch):
    for i in range(4):
        headers = {"Authorization": BAD, "X-Forwarded-For": f"203.0.113.{i}"}
        resp = await call(jp_fetch, "agnes", "api", "me", headers=headers)
    assert resp.code == 429


async def test_successful_requests_are_not_limited(jp_fetch, agnes):
    good = agnes.pat("busy@example.com")
    for _ in range(20):
        assert (await call(jp_fetch, "agnes", "api", "me", headers=bearer(good))).code == 200


async def test_login_links_are_limited(jp_fetch, agnes):
    codes = []
    for _ in range(4):
        resp = await jp_fetch("agnes", "auth", "link", params={"code": "guess"},
                              follow_redirects=False, raise_error=False)
        codes.append(resp.code)
    assert codes == [302, 302, 302, 429]
    assert agnes.store.audit_queue.flush(timeout=30)
    with agnes.store.read() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == "auth.rate_limited")).all()
    assert [r.resource for r in rows] == ["route:login_link"]
