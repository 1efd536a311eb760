"""With POSTHOG_IDENTIFY_PII=none, no page prints who is signed in (session replay would
record it); in every other mode the line is there, masked for replay."""

from __future__ import annotations

import re

import pytest

from tests.support.apihelpers import call, cookie_header

EMAIL = "Pat.Doe@example.com"


@pytest.fixture(params=["none", "email"])
def pii_mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def agnes_extra_config(pii_mode: str) -> dict:
    return {"ObservabilitySettings": {"identify_pii": pii_mode}}


PAGES = (
    ("agnes", "dashboards"),
    ("agnes", "logout"),
    ("agnes", "tokens"),
    ("agnes", "access"),
)


async def test_signed_in_pages_name_the_user_only_when_allowed(jp_fetch, agnes, pii_mode):
    agnes.user(EMAIL, groups=("ops",))
    with agnes.store.write() as s:
        from jupyter_agnes.store import directory

        directory.get_user_by_email(s, EMAIL).name = "Pat Doe"
    headers = cookie_header(agnes.session_cookie(EMAIL))
    for page in PAGES:
        resp = await call(jp_fetch, *page, headers=headers)
        assert resp.code == 200, (page, resp.code)
        html = resp.body.decode()
        assert "sign" in html.lower()  # the page itself still renders its actions
        if pii_mode == "none":
            assert EMAIL.lower() not in html.lower() and "Pat Doe" not in html, page
            assert "Signed in as" not in html
        else:
            line = re.search(r'<strong id="agnes-user"([^>]*)>([^<]*)</strong>', html)
            assert line and line.group(2) == EMAIL.lower(), page
            assert 'class="ph-mask"' in line.group(1) and "data-sensitive" in line.group(1)
