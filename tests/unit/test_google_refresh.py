"""The Google re-check (`auth.google_refresh`) on a real SQLite store against the fake
Google's Directory: removal, deletion, outages, the lease, pacing, the hub's share."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from jupyter_agnes.auth.google_oauth import GoogleOAuthSettings
from jupyter_agnes.auth.google_policy import Allowed, GooglePolicyConfig
from jupyter_agnes.auth.google_refresh import LEASE, GoogleRefresher
from jupyter_agnes.auth.google_sync import (
    REFRESH_ACTION,
    apply_google_login,
)
from jupyter_agnes.auth.service import AuthFailure, AuthService
from jupyter_agnes.store import directory, leases
from jupyter_agnes.store.engine import open_store
from jupyter_agnes.store.models import AuditEntry, Lease, User, utcnow
from tests.fakes.google_server import FakeGoogle
from tests.support.migrations import open_migrated_store

ALLOWED = "agnes-analysts@acme.com"


@pytest.fixture(scope="module")
def google():
    with FakeGoogle() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_google(google):
    google.modes.clear()
    google.users.clear()
    yield


@pytest.fixture
def store(tmp_path):
    s = open_migrated_store(tmp_path)
    yield s
    s.close()


@pytest.fixture
def key_file(google, tmp_path):
    import json

    path = tmp_path / "sa.json"
    path.write_text(json.dumps(google.service_account_json()))
    return str(path)


def make_refresher(store, google, key_file, **kw) -> GoogleRefresher:
    settings = GoogleOAuthSettings(
        directory_url=google.base_url + "/admin/directory/v1",
        admin_sdk_key_file=key_file,
        mock_groups=[],
        directory_timeout=1.0,
    )
    policy = GooglePolicyConfig(allowed_domains=["acme.com"], group_prefix="agnes-")
    kw.setdefault("interval_s", 1.0)  # a run is spread over half of it
    kw.setdefault("requests_per_second", 1000.0)
    return GoogleRefresher(store, settings, policy, **kw)


def signed_in(
    store, google, email: str, groups: list[str], recent: bool = False
) -> tuple[int, str, str]:
    """A Google user with synced groups, a live session and a PAT: (id, cookie, pat)."""
    google.set_user(email, groups=groups)
    kept = tuple(g for g in groups if g.startswith("agnes-"))
    out = apply_google_login(store, email, "", Allowed(kept, False))
    assert out.user_id is not None
    auth = AuthService(store)
    cookie, _ = auth.start_session(out.user_id, "google")
    pat = auth.create_token(out.user_id, "ci", 30, auth.load_principal(out.user_id, "pat")).token
    if not recent:  # signed in long ago: the run asks the Directory about them
        with store.write() as s:
            s.execute(
                update(AuditEntry)
                .where(AuditEntry.user_id == out.user_id)
                .values(ts=utcnow() - timedelta(days=1))
            )
    return out.user_id, cookie, pat


def grant_tables(store, group: str, table: str) -> None:
    with store.write() as s:
        g = directory.get_or_create_group(s, group, "test")
        directory.add_grant(s, g, "table", table, "test")


def refresh_audits(store) -> list[AuditEntry]:
    with store.read() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == REFRESH_ACTION)))


def test_removal_from_the_allowed_group_revokes_sessions_and_strips_pat_rights(
    store, google, key_file
):
    grant_tables(store, ALLOWED, "orders")
    grant_tables(store, "finance", "ledger")
    uid, cookie, pat = signed_in(store, google, "ann@acme.com", [ALLOWED, "all@acme.com"])
    with store.write() as s:  # an admin-added membership: not Google's to take away
        user = s.get(User, uid)
        finance = directory.get_or_create_group(s, "finance", "t")
        directory.add_member(s, user, finance, "admin", "t")
    auth = AuthService(store)
    before = auth.authenticate_bearer(pat, "1.2.3.4")
    assert ("table", "orders") in before.grants and ("table", "ledger") in before.grants

    google.set_user("ann@acme.com", groups=["all@acme.com"])  # out of the only allowed group
    report = make_refresher(store, google, key_file).run_if_due()

    assert report is not None and report.checked == 1
    [change] = report.changes
    assert change.reason == "not_in_allowed_group" and change.removed == (ALLOWED,)
    assert change.sessions_revoked == 1
    assert auth.authenticate_session(cookie) is None
    after = auth.authenticate_bearer(pat, "1.2.3.4")  # same AuthService: its cache emptied
    assert ("table", "orders") not in after.grants
    assert ("table", "ledger") in after.grants  # the admin-added membership still grants
    [row] = refresh_audits(store)
    assert row.user_id == uid and row.result == "not_in_allowed_group"
    assert row.params["reason"] == "not_in_allowed_group"
    assert row.params["removed"] == [ALLOWED]


def test_removal_from_every_group_counts_too(store, google, key_file):
    """The Directory answering "no groups" for this very user is an answer here."""
    _, cookie, _ = signed_in(store, google, "bo@acme.com", [ALLOWED])
    google.set_user("bo@acme.com", groups=[])
    report = make_refresher(store, google, key_file).run_if_due()
    assert report is not None and [c.reason for c in report.changes] == ["not_in_allowed_group"]
    assert AuthService(store).authenticate_session(cookie) is None


def test_a_user_still_allowed_is_left_alone(store, google, key_file):
    _, cookie, _ = signed_in(store, google, "cy@acme.com", [ALLOWED])
    report = make_refresher(store, google, key_file).run_if_due()
    assert report is not None and report.checked == 1 and report.changes == []
    assert AuthService(store).authenticate_session(cookie) is not None
    assert refresh_audits(store) == []


def test_new_allowed_group_is_synced(store, google, key_file):
    signed_in(store, google, "di@acme.com", [ALLOWED])
    google.set_user("di@acme.com", groups=[ALLOWED, "agnes-bi@acme.com"])
    report = make_refresher(store, google, key_file).run_if_due()
    assert report is not None
    [change] = report.changes
    assert change.reason == "groups_changed" and change.added == ("agnes-bi@acme.com",)
    with store.read() as s:
        user = directory.get_user_by_email(s, "di@acme.com")
        assert "agnes-bi@acme.com" in directory.user_group_names(s, user.id)


def test_deleted_from_workspace_is_deactivated(store, google, key_file):
    uid, cookie, pat = signed_in(store, google, "ed@acme.com", [ALLOWED])
    google.users.pop("ed@acme.com")  # the Directory now answers 404 for this userKey
    report = make_refresher(store, google, key_file).run_if_due()
    assert report is not None
    [change] = report.changes
    assert change.deactivated and change.reason == "not_in_directory"
    auth = AuthService(store)
    assert auth.authenticate_session(cookie) is None
    with pytest.raises(AuthFailure):
        auth.authenticate_bearer(pat, "1.2.3.4")
    with store.read() as s:
        assert s.get(User, uid).active is False
    assert refresh_audits(store)[0].result == "not_in_directory"


def test_a_404_that_is_not_googles_answer_deactivates_nobody(store, google, key_file):
    """A wrong Directory URL (a 404 page, not Google's JSON error) is an outage."""
    _, cookie, _ = signed_in(store, google, "fay@acme.com", [ALLOWED])
    refresher = make_refresher(store, google, key_file)
    refresher.client.settings.directory_url = google.base_url + "/wrong/v1"
    report = refresher.run_if_due()
    assert report is not None and report.changes == [] and report.unavailable == 1
    assert AuthService(store).authenticate_session(cookie) is not None


def test_directory_outage_changes_nothing_and_logs_once(store, google, key_file, caplog):
    sessions = []
    for i in range(6):  # one more than the failures in a row that end a run
        google.set_user(f"u{i}@acme.com", groups=[ALLOWED])
        sessions.append(signed_in(store, google, f"u{i}@acme.com", [ALLOWED])[1])
        google.set_user(f"u{i}@acme.com", groups=["all@acme.com"])  # they would be refused
    google.set_mode(directory="500")
    asked_before = len(google.requests)
    with caplog.at_level(logging.WARNING):  # a short interval: no pacing waits here
        report = make_refresher(store, google, key_file, interval_s=0.01).run_if_due()
    assert report is not None and report.changes == [] and report.unavailable == 6
    auth = AuthService(store)
    assert all(auth.authenticate_session(c) is not None for c in sessions)
    assert refresh_audits(store) == []
    lines = [r.getMessage() for r in caplog.records if "could not answer" in r.getMessage()]
    assert len(lines) == 1 and "6 user(s)" in lines[0]
    # the run gave up after a few failures in a row instead of asking for everyone
    asked = [r for r in google.requests[asked_before:] if r[1] == "/admin/directory/v1/groups"]
    assert len(asked) == 5


def test_the_lease_lets_one_refresher_run_per_interval(tmp_path, google, key_file):
    first, second = open_store(tmp_path), open_store(tmp_path)  # two servers, one store
    try:
        signed_in(first, google, "gu@acme.com", [ALLOWED])
        # a long interval: a loaded machine cannot end it mid-test; the test ends it
        a = make_refresher(first, google, key_file, interval_s=60.0)
        b = make_refresher(second, google, key_file, interval_s=60.0)
        start = google.directory_calls
        results = []
        barrier = threading.Barrier(2)

        def go(refresher):
            barrier.wait()
            results.append(refresher.run_if_due())

        threads = [threading.Thread(target=go, args=(r,)) for r in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r is None for r in results) == [False, True]
        assert google.directory_calls - start == 1
        assert b.run_if_due() is None and a.run_if_due() is None  # still this interval
        assert 30 < b.seconds_until_due() <= 60 + 1.0  # the lease left, plus jitter
        with first.write() as s:  # the interval is over (a moved clock, not a sleep)
            s.execute(update(Lease).values(expires_at=utcnow()))
        assert b.run_if_due() is not None  # the next interval: whoever asks first
        assert google.directory_calls - start == 2
    finally:
        first.close()
        second.close()


def test_lease_extend_fails_once_another_holder_took_it(store):
    assert leases.try_acquire(store, LEASE, "a", 0.01)
    time.sleep(0.05)
    assert leases.try_acquire(store, LEASE, "b", 60)
    assert not leases.extend(store, LEASE, "a", 60)
    assert leases.extend(store, LEASE, "b", 60)
    assert leases.try_acquire(store, "other-work", "a", 60)  # a new name: its row is added
    assert not leases.try_acquire(store, "other-work", "b", 60)


def test_people_without_credentials_or_google_are_not_asked(store, google, key_file):
    signed_in(store, google, "ha@acme.com", [ALLOWED])
    with store.write() as s:  # Google-synced, but nothing live to re-check
        idle = directory.create_user(s, "idle@acme.com")
        directory.add_member(s, idle, directory.get_or_create_group(s, ALLOWED, "t"),
                             "google_sync", "t")
        local = directory.create_user(s, "local@acme.com")  # no Google about them at all
        local_id = local.id
    AuthService(store).start_session(local_id, "link")
    refresher = make_refresher(store, google, key_file)
    assert [e for _, e in refresher.users_to_check()] == ["ha@acme.com"]
    assert refresher.users_to_check("HA@acme.com")[0][1] == "ha@acme.com"
    assert refresher.users_to_check("idle@acme.com") == []


def test_a_recent_sign_in_or_hub_refresh_is_not_asked_again(store, google, key_file):
    """Under JupyterHub the hub's refresh_user reaches the store as a login; the service's
    run skips whoever was decided with Directory data during the last interval."""
    signed_in(store, google, "io@acme.com", [ALLOWED], recent=True)  # groups from Google
    signed_in(store, google, "jo@acme.com", [ALLOWED])  # a day ago
    start = google.directory_calls
    report = make_refresher(store, google, key_file).run_if_due()
    assert report is not None and report.skipped_recent == 1 and report.checked == 1
    assert google.directory_calls == start + 1


def test_calls_are_paced(store, google, key_file):
    for i in range(6):
        signed_in(store, google, f"p{i}@acme.com", [ALLOWED])
    refresher = make_refresher(store, google, key_file, requests_per_second=100.0)
    users = refresher.users_to_check()
    started = time.monotonic()
    report = refresher.run(users, spread=False)
    assert report.checked == 6
    assert time.monotonic() - started >= 0.045  # 6 calls at 100/s: 5 gaps of 0.01 s
