"""Under POSTHOG_IDENTIFY_PII=none the audit page still shows an admin who did what, but
every cell naming a person is masked from session replay, and nobody is "signed in as"."""

from __future__ import annotations

import re

import pytest

from tests.support.apihelpers import call, cookie_header
from tests.support.audit_log import add_entries, entry


@pytest.fixture
def agnes_extra_config() -> dict:
    return {"ObservabilitySettings": {"identify_pii": "none"}}


async def test_people_on_the_audit_page_are_masked(jp_fetch, agnes):
    add_entries(agnes.store, [entry("grant.add", actor="ann@example.com",
                                    resource="user:bob@example.com",
                                    params={"email": "cy@example.com"})])
    headers = cookie_header(agnes.session_cookie("boss@example.com", admin=True))
    resp = await call(jp_fetch, "agnes", "admin", "audit", headers=headers)
    assert resp.code == 200
    html = resp.body.decode()
    assert "Signed in as" not in html
    for email in ("ann@example.com", "bob@example.com", "cy@example.com"):
        assert email in html  # the admin reads it...
    masked = re.sub(r'<td class="ph-mask" data-sensitive>.*?</td>', "", html, flags=re.S)
    assert "@example.com" not in masked  # ...and a replay does not
