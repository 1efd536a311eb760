"""`GET /agnes/api/admin/audit` and the `/agnes/admin/audit` page through a real server:
who may read the log, paging, filters, hostile parameters and the CSV export."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import update

from jupyter_agnes.store.models import PersonalAccessToken
from tests.support.apihelpers import bearer, cookie_header
from tests.support.audit_log import T0, add_entries, entry, minutes

AUDIT = ("agnes", "api", "admin", "audit")
PAGE = ("agnes", "admin", "audit")


async def get(jp_fetch, headers, params=None, path=AUDIT):
    return await jp_fetch(*path, params=params or {}, headers=headers, raise_error=False,
                          follow_redirects=False)


def body(resp) -> dict:
    return json.loads(resp.body)


@pytest.fixture
def seeded(agnes):
    add_entries(
        agnes.store,
        [entry("auth.login", actor="ann@example.com", ts=T0 + minutes(i % 3)) for i in range(7)]
        + [entry("grant.add", actor="bob@example.com", resource="table:sales", ts=T0),
           entry("=HYPERLINK(\"http://evil\")", actor="@evil", resource="-2+3", ts=T0)],
    )
    return agnes


async def test_admin_pages_through_the_log_newest_first(jp_fetch, seeded):
    admin = bearer(seeded.pat("boss@example.com", admin=True))
    seen, cursor = [], None
    while True:
        resp = await get(jp_fetch, admin, {"limit": "2", **({"cursor": cursor} if cursor else {})})
        assert resp.code == 200, resp.body
        page = body(resp)
        assert len(page["entries"]) <= 2
        seen += page["entries"]
        cursor = page["next"]
        if cursor is None:
            break
    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids)) >= 9  # the seeded rows, plus any the setup audited
    keys = [(e["ts"], e["id"]) for e in seen]
    assert keys == sorted(keys, reverse=True)
    assert set(seen[0]) == {"id", "ts", "actor", "user_id", "action", "resource", "result",
                            "params"}


async def test_filters_through_the_api(jp_fetch, seeded):
    admin = bearer(seeded.pat("boss@example.com", admin=True))
    page = body(await get(jp_fetch, admin, {"action": "auth.", "limit": "500"}))
    assert {e["action"] for e in page["entries"]} == {"auth.login"} and len(page["entries"]) == 7
    page = body(await get(jp_fetch, admin, {"actor": "bob@example.com"}))
    assert [e["resource"] for e in page["entries"]] == ["table:sales"]
    page = body(await get(jp_fetch, admin, {"target": "table:*"}))
    assert [e["action"] for e in page["entries"]] == ["grant.add"]
    since = (T0 + minutes(1)).isoformat()
    page = body(await get(jp_fetch, admin, {"action": "auth.", "since": since}))
    assert len(page["entries"]) == 4  # minutes 1 and 2 of 0,1,2,0,1,2,0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "100000"}, "limit must be a whole number from 1 to 500"),
        ({"cursor": "forged"}, "cursor is not one this server gave out"),
        ({"since": "last tuesday"}, "since must be an ISO 8601 time"),
        ({"format": "xlsx"}, "format must be one of: json, csv"),
        ({"offset": "5"}, "unknown parameter 'offset'"),
        ({"actor": "x" * 400}, "actor is longer than 320 characters"),
    ],
)
async def test_malformed_parameters_are_400(jp_fetch, agnes, params, message):
    resp = await get(jp_fetch, bearer(agnes.pat("boss@example.com", admin=True)), params)
    assert resp.code == 400 and body(resp)["message"].startswith(message)


async def test_a_repeated_parameter_is_400(jp_fetch, agnes):
    admin = bearer(agnes.pat("boss@example.com", admin=True))
    resp = await get(jp_fetch, admin, [("limit", "1"), ("limit", "2")])
    assert resp.code == 400 and body(resp)["message"] == "limit is given more than once"


def _age_tokens(agnes, email: str, **values) -> None:
    with agnes.store.write() as s:
        s.execute(update(PersonalAccessToken)
                  .where(PersonalAccessToken.user_id == agnes.user(email, admin=True))
                  .values(**values))


async def test_who_may_not_read_the_log(jp_fetch, agnes):
    plain = agnes.pat("plain@example.com")
    data_only = agnes.pat("boss@example.com", admin=True, scopes=["data"])
    for token in (plain, data_only):
        for path in (AUDIT, PAGE):
            resp = await get(jp_fetch, bearer(token), path=path)
            assert resp.code == 403, (path, resp.body)
    assert body(await get(jp_fetch, bearer(plain)))["message"] == "Admin access required"
    assert "scope" in body(await get(jp_fetch, bearer(data_only)))["message"]

    expired = agnes.pat("old@example.com", admin=True)
    _age_tokens(agnes, "old@example.com",
                expires_at=datetime.now(timezone.utc) - timedelta(days=1))
    revoked = agnes.pat("gone@example.com", admin=True)
    _age_tokens(agnes, "gone@example.com", revoked_at=datetime.now(timezone.utc))
    forged = "agnes_pat_" + "A" * 43
    for token in (expired, revoked, forged):
        for path in (AUDIT, PAGE):
            resp = await get(jp_fetch, bearer(token), path=path)
            assert resp.code == 401, (path, resp.body)
            assert b"auth." not in resp.body  # no entry leaks with the refusal
    anonymous = await get(jp_fetch, {})
    assert anonymous.code == 401
    page = await get(jp_fetch, {}, path=PAGE)
    assert page.code == 302 and "login?next=" in page.headers["Location"]


async def test_the_csv_export_streams_every_match_with_formulas_escaped(jp_fetch, seeded):
    admin = bearer(seeded.pat("boss@example.com", admin=True))
    resp = await get(jp_fetch, admin, {"format": "csv", "limit": "1"})
    assert resp.code == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="agnes-audit-') and disposition.endswith(
        '.csv"')
    rows = list(csv.DictReader(io.StringIO(resp.body.decode())))
    assert len(rows) >= 9  # every match, not one page (`limit` is not a cap for CSV)
    evil = [r for r in rows if r["actor"] == "'@evil"]
    assert len(evil) == 1
    assert evil[0]["action"] == "'=HYPERLINK(\"http://evil\")" and evil[0]["resource"] == "'-2+3"
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())
    filtered = await get(jp_fetch, admin, {"format": "csv", "actor": "bob@example.com"})
    assert [r["resource"] for r in csv.DictReader(io.StringIO(filtered.body.decode()))] == [
        "table:sales"]


async def test_the_page_lists_filters_and_links_the_next_page(jp_fetch, seeded):
    cookie = cookie_header(seeded.session_cookie("boss@example.com", admin=True))
    resp = await get(jp_fetch, cookie, {"action": "auth.", "limit": "50"}, path=PAGE)
    assert resp.code == 200
    html = resp.body.decode()
    assert html.count('class="audit-row"') == 7 and "grant.add" not in html
    assert 'value="auth."' in html  # the form keeps the filter
    assert 'id="audit-export"' in html and "format=csv" in html
    assert "ann@example.com</td>" in html and 'class="ph-mask" data-sensitive>ann@' in html
    assert 'id="audit-next"' not in html  # 7 rows fit one page
    # the next-page link keeps the filters and continues where the page stopped
    first = (await get(jp_fetch, cookie, {"action": "auth.", "limit": "4"}, path=PAGE))
    href = re.search(r'href="([^"]+)" id="audit-next"', first.body.decode()).group(1)
    params = parse_qsl(urlsplit(unescape(href)).query)
    assert ("action", "auth.") in params and any(k == "cursor" for k, _ in params)
    second = (await get(jp_fetch, cookie, params, path=PAGE)).body.decode()
    assert second.count('class="audit-row"') == 3 and 'id="audit-newest"' in second
    assert 'id="audit-next"' not in second
    bad = await get(jp_fetch, cookie, {"since": "soon"}, path=PAGE)
    assert bad.code == 400 and "since must be an ISO 8601 time" in bad.body.decode()
    viewer = cookie_header(seeded.session_cookie("viewer@example.com"))
    assert (await get(jp_fetch, viewer, path=PAGE)).code == 403
