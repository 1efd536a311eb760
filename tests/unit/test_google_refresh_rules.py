"""The Google re-check's rules without waiting: who is asked, pacing on a moved clock,
outages, batches, the lease, the knobs (`auth.google_refresh`). A small in-process
Directory stands in for Google here (tests/unit/test_google_refresh.py uses the fake
Google over HTTP, end to end)."""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update
from traitlets import TraitError
from traitlets.config import LoggingConfigurable

from jupyter_agnes.auth import google_refresh
from jupyter_agnes.auth.google_directory import DirectoryUserNotFound
from jupyter_agnes.auth.google_http import GoogleAuthError
from jupyter_agnes.auth.google_oauth import GoogleOAuthSettings
from jupyter_agnes.auth.google_policy import Allowed, Denied, GooglePolicyConfig
from jupyter_agnes.auth.google_refresh import (
    LEASE,
    GoogleRefresher,
    _Pacer,
    positive_seconds,
    refresh_interval_s,
)
from jupyter_agnes.auth.google_sync import LOGIN_ACTION
from jupyter_agnes.store import directory, leases
from jupyter_agnes.store.models import AuditEntry, Lease, PersonalAccessToken, User, utcnow
from jupyter_agnes.store.models import Session as UserSession

ALLOWED = "agnes-analysts@acme.com"


class Clock:
    """The monotonic clock the module reads; `Stop.wait` moves it instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Stop:
    """A threading.Event look-alike whose `wait` advances the clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock, self.flag, self.waits = clock, False, []

    def wait(self, delay: float) -> bool:
        self.waits.append(round(delay, 6))
        self.clock.now += delay
        return self.flag

    def is_set(self) -> bool:
        return self.flag

    def set(self) -> None:
        self.flag = True


class Directory:
    """Answers `lookup_groups` like GoogleOIDCClient: groups, not found, or an outage."""

    def __init__(self) -> None:
        self.groups: dict[str, list[str]] = {}
        self.failing: set[str] = set()
        self.asked: list[str] = []

    def lookup_groups(self, email: str) -> list[str]:
        self.asked.append(email)
        if email in self.failing:
            raise GoogleAuthError(f"Directory: 500 for {email}")
        if email not in self.groups:
            raise DirectoryUserNotFound("Directory: no such user")
        return self.groups[email]


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(google_refresh, "time", SimpleNamespace(monotonic=c.monotonic))
    return c



def refresher(store, clock: Clock | None = None, **kw) -> GoogleRefresher:
    policy = GooglePolicyConfig(allowed_domains=["acme.com"], group_prefix="agnes-")
    kw.setdefault("interval_s", 10.0)
    kw.setdefault("requests_per_second", 1000.0)
    r = GoogleRefresher(store, GoogleOAuthSettings(), policy, **kw)
    r.client = Directory()
    if clock is not None:
        r.stopping = Stop(clock)
    return r


def synced_user(store, email: str, *, session: str | None = "google", pat: bool = False,
                synced: bool = True, **user) -> int:
    """A user, optionally Google-synced, with a live session (of `session`) and/or PAT."""
    with store.write() as s:
        u = directory.create_user(s, email)
        for key, value in user.items():
            setattr(u, key, value)
        if synced:
            group = directory.get_or_create_group(s, ALLOWED, "system:google-sync")
            directory.add_member(s, u, group, "google_sync", "t")
        s.flush()
        later = utcnow() + timedelta(hours=1)
        if session is not None:
            s.add(UserSession(id=f"s-{email}", user_id=u.id, expires_at=later,
                              auth_method=session))
        if pat:
            s.add(PersonalAccessToken(id=f"p-{email}"[:32], user_id=u.id, name="ci",
                                      token_hash=email, prefix="x", expires_at=later))
        return u.id


# --- the knobs ---------------------------------------------------------------------


def test_positive_seconds_refuses_zero_negative_and_non_finite() -> None:
    assert positive_seconds(0.5) == 0.5
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="not a positive number"):
            positive_seconds(bad)


def test_refresh_interval_from_env(monkeypatch) -> None:
    monkeypatch.delenv("AGNES_HUB_REFRESH_S", raising=False)
    assert refresh_interval_s() == 300.0
    monkeypatch.setenv("AGNES_HUB_REFRESH_S", "12.5")
    assert refresh_interval_s() == 12.5
    for bad in ("0", "-3", "soon", "inf"):
        monkeypatch.setenv("AGNES_HUB_REFRESH_S", bad)
        with pytest.raises(TraitError, match=f"AGNES_HUB_REFRESH_S='{bad}' is not a positive"):
            refresh_interval_s()


def test_refresher_knobs_default_from_env_and_bad_ones_fail_at_startup(store, monkeypatch):
    monkeypatch.setenv("AGNES_HUB_REFRESH_S", "42")
    monkeypatch.setenv("AGNES_GOOGLE_REFRESH_RPS", "7")
    policy = GooglePolicyConfig()
    r = GoogleRefresher(store, GoogleOAuthSettings(), policy)
    assert (r.interval_s, r.requests_per_second) == (42.0, 7.0)
    assert r.log.name == "jupyter_agnes.auth.google"
    monkeypatch.delenv("AGNES_GOOGLE_REFRESH_RPS")
    assert GoogleRefresher(store, GoogleOAuthSettings(), policy).requests_per_second == 20.0
    with pytest.raises(TraitError, match="requests_per_second must be positive, not 0"):
        GoogleRefresher(store, GoogleOAuthSettings(), policy, requests_per_second=0)
    with pytest.raises(TraitError, match="interval_s must be positive, not -1"):
        GoogleRefresher(store, GoogleOAuthSettings(), policy, interval_s=-1,
                        requests_per_second=1)
    # a default from the environment is checked too (traitlets validates only set values)
    for bad in ("0", "-2"):
        monkeypatch.setenv("AGNES_GOOGLE_REFRESH_RPS", bad)
        with pytest.raises(TraitError, match=f"AGNES_GOOGLE_REFRESH_RPS must be positive, not {bad}"):
            _ = GoogleRefresher(store, GoogleOAuthSettings(), policy).requests_per_second


def test_in_the_server_the_re_check_logs_to_the_servers_log(store) -> None:
    """Created by the server extension (`parent=`), its lines go where the server's go."""
    server = LoggingConfigurable(log=logging.getLogger("agnes.test.server"))
    r = GoogleRefresher(store, GoogleOAuthSettings(), GooglePolicyConfig(), parent=server)
    assert r.log is server.log


def test_each_refresher_holds_the_lease_under_its_own_name(store) -> None:
    a, b = refresher(store), refresher(store)
    assert a.holder != b.holder and a.holder.count(":") == 2
    a.stop()
    assert a.stopping.is_set() and not b.stopping.is_set()


# --- pacing on a moved clock -------------------------------------------------------


def test_pacer_spaces_calls_and_does_not_save_up_calls_over_a_pause(clock) -> None:
    stop = Stop(clock)
    pacer = _Pacer(4.0, stop)
    assert all(pacer.wait() for _ in range(4))
    assert stop.waits == [0.25, 0.25, 0.25]  # the first call goes at once
    clock.now += 10  # idle: at most one call comes early, then the pace again
    assert pacer.wait() and pacer.wait() and pacer.wait()
    assert stop.waits == [0.25, 0.25, 0.25, 0.25]


def test_pacer_without_a_rate_never_waits_and_stops_when_told(clock) -> None:
    stop = Stop(clock)
    free = _Pacer(0.0, stop)
    assert free.wait() and free.wait() and stop.waits == []
    paced = _Pacer(1.0, stop)
    assert paced.wait()
    stop.set()  # the server stops, during the wait or before it
    assert not paced.wait() and stop.waits == [1.0]
    assert not _Pacer(0.0, stop).wait()


def test_a_run_spreads_its_calls_over_half_the_interval(store, clock) -> None:
    r = refresher(store, clock, interval_s=8.0)
    users = [(i, f"u{i}@acme.com") for i in range(1, 5)]
    r.run(users)  # 4 calls over 4 s: one a second
    assert r.stopping.waits == [1.0, 1.0, 1.0]
    r.stopping.waits.clear()
    r.run(users, spread=False)  # the quota only
    assert r.stopping.waits == [0.001] * 3
    r.stopping.waits.clear()
    slow = refresher(store, clock, interval_s=8.0, requests_per_second=0.5)
    slow.run(users)  # never faster than the quota, spread or not
    assert slow.stopping.waits == [2.0, 2.0, 2.0]


def test_a_run_longer_than_the_interval_says_which_knob_to_raise(store, clock, caplog) -> None:
    r = refresher(store, clock, interval_s=1.0, requests_per_second=1.0)
    users = [(i, f"u{i}@acme.com") for i in range(1, 4)]
    with caplog.at_level(logging.WARNING, "jupyter_agnes.auth.google"):
        report = r.run(users, spread=False)
    assert report.seconds == 2.0
    assert [m for m in caplog.messages if "took" in m] == [
        "Google re-check took 2 s, longer than AGNES_HUB_REFRESH_S=1: raise "
        "AGNES_GOOGLE_REFRESH_RPS (now 1) or the interval"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, "jupyter_agnes.auth.google"):
        assert r.run(users[:2], spread=False).seconds == 1.0  # as long as the interval: fine
    assert not [m for m in caplog.messages if "took" in m]


# --- a run's outcome ---------------------------------------------------------------


def test_verdict_applies_the_policy_to_the_directory_answer(store) -> None:
    r = refresher(store)
    r.client.groups.update({"a@acme.com": [ALLOWED, "x@acme.com"], "b@acme.com": [],
                            "c@other.com": [ALLOWED]})
    assert r.verdict("a@acme.com") == Allowed((ALLOWED,), False)
    assert r.verdict("b@acme.com") == Denied("not_in_allowed_group")  # no groups: an answer
    assert r.verdict("c@other.com") == Denied("domain_not_allowed")
    assert r.verdict("gone@acme.com") is None
    r.client.failing.add("a@acme.com")
    with pytest.raises(GoogleAuthError):
        r.verdict("a@acme.com")


def test_an_outage_stops_the_run_and_is_logged_once(store, caplog) -> None:
    r = refresher(store)
    users = [(i, f"u{i}@acme.com") for i in range(1, 8)]
    r.client.failing.update(e for _, e in users)
    with caplog.at_level(logging.WARNING, "jupyter_agnes.auth.google"):
        report = r.run(users, spread=False)
    assert len(r.client.asked) == 5 and report.unavailable == 7 and report.checked == 0
    assert report.last_error == "Directory: 500 for u5@acme.com"
    assert caplog.messages == [  # the operator's one line: why, how many, what it means
        "Google re-check: the Directory could not answer (Directory: 500 for u5@acme.com); "
        "7 user(s) not re-checked, unchanged until the next run"
    ]


def test_failures_not_in_a_row_do_not_stop_the_run(store) -> None:
    r = refresher(store)
    users = [(i, f"u{i}@acme.com") for i in range(1, 13)]
    for i, email in users:
        r.client.groups[email] = [ALLOWED]
        if i % 5:  # four failures, then an answer, again and again
            r.client.failing.add(email)
    report = r.run(users, spread=False)
    assert len(r.client.asked) == 12 and report.unavailable == 10 and report.checked == 2


def test_changes_are_applied_reported_and_logged(store, caplog) -> None:
    kept = synced_user(store, "kept@acme.com")
    gone = synced_user(store, "gone@acme.com")
    out = synced_user(store, "out@acme.com")
    r = refresher(store)
    r.client.groups.update({"kept@acme.com": [ALLOWED], "out@acme.com": ["x@acme.com"]})
    users = [(kept, "kept@acme.com"), (gone, "gone@acme.com"), (out, "out@acme.com")]
    with caplog.at_level(logging.WARNING, "jupyter_agnes.auth.google"):
        report = r.run(users, spread=False)
    assert report.checked == 3 and report.unavailable == 0
    assert [(c.email, c.reason) for c in report.changes] == [
        ("gone@acme.com", "not_in_directory"), ("out@acme.com", "not_in_allowed_group")
    ]
    assert caplog.messages == [f"Google re-check: {c.describe()}" for c in report.changes]
    with store.read() as s:
        assert s.get(User, gone).active is False and s.get(User, kept).active is True
        assert directory.user_group_names(s, out) == ["Everyone"]
        assert ALLOWED in directory.user_group_names(s, kept)


def test_batches_report_progress_and_a_stop_ends_the_run(store) -> None:
    r = refresher(store)
    users = [(i, f"u{i}@acme.com") for i in range(1, 121)]
    r.client.groups.update({e: [ALLOWED] for _, e in users})
    seen = []
    report = r.run(users, spread=False, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(50, 120), (100, 120), (120, 120)] and report.checked == 120
    seen.clear()
    report = r.run(users, spread=False, progress=lambda d, t: (seen.append(d), r.stop()))
    assert seen == [50] and report.checked == 50


def test_a_run_stops_when_another_server_took_the_lease(store, caplog) -> None:
    r = refresher(store)
    users = [(i, f"u{i}@acme.com") for i in range(1, 61)]
    r.client.groups.update({e: [ALLOWED] for _, e in users})
    assert leases.try_acquire(store, LEASE, r.holder, 10)
    assert r.run(users, spread=False, keep_lease=True).checked == 60  # still ours
    assert 9 < leases.seconds_left(store, LEASE) <= 10
    with store.write() as s:  # it expired and another server took it
        s.execute(update(Lease).values(holder="other"))
    with caplog.at_level(logging.WARNING, "jupyter_agnes.auth.google"):
        assert r.run(users, spread=False, keep_lease=True).checked == 50
    assert caplog.messages == ["Google re-check: another server took over; stopping here"]
    assert r.run(users, spread=False).checked == 60  # a run without the lease (the CLI)


# --- who is asked ------------------------------------------------------------------


def test_only_active_people_with_live_credentials_vouched_for_by_google_are_asked(store):
    asked = {
        synced_user(store, "session@acme.com"),
        synced_user(store, "pat@acme.com", session=None, pat=True),
        synced_user(store, "link@acme.com", session="link"),
        synced_user(store, "google@acme.com", synced=False),
    }
    synced_user(store, "idle@acme.com", session=None)
    synced_user(store, "linkonly@acme.com", session="link", synced=False)
    synced_user(store, "off@acme.com", active=False)
    synced_user(store, "svc@acme.com", is_service=True)
    stale = [synced_user(store, f"{k}@acme.com", session=None, pat=True) for k in ("xp", "rp")]
    stale += [synced_user(store, f"{k}@acme.com") for k in ("xs", "rs")]
    stale += [synced_user(store, "xg@acme.com", synced=False)]
    past, now = utcnow() - timedelta(seconds=1), utcnow()
    with store.write() as s:
        for model, uid, col in (
            (PersonalAccessToken, stale[0], "expires_at"), (PersonalAccessToken, stale[1], "revoked_at"),
            (UserSession, stale[2], "expires_at"), (UserSession, stale[3], "revoked_at"),
            (UserSession, stale[4], "expires_at"),
        ):
            row = s.scalars(select(model).where(model.user_id == uid)).one()
            setattr(row, col, past if col == "expires_at" else now)
    r = refresher(store)
    found = r.users_to_check()
    assert {uid for uid, _ in found} == asked and found == sorted(found)  # by id
    pat_id = dict((e, uid) for uid, e in found)["pat@acme.com"]
    assert r.users_to_check("  PAT@Acme.com ") == [(pat_id, "pat@acme.com")]
    assert r.users_to_check("idle@acme.com") == []


def test_credentials_expiring_this_instant_are_not_live(store, monkeypatch) -> None:
    """Live means what authentication accepts: an expiry of now has passed."""
    now = utcnow()
    monkeypatch.setattr(google_refresh, "utcnow", lambda: now)  # the clock stands still
    by_session = synced_user(store, "s@acme.com")
    by_pat = synced_user(store, "p@acme.com", session=None, pat=True)
    with store.write() as s:
        for model, uid in ((UserSession, by_session), (PersonalAccessToken, by_pat)):
            s.scalars(select(model).where(model.user_id == uid)).one().expires_at = now
    assert refresher(store).users_to_check() == []


def login_audit(store, uid: int, *, age_s: float = 0, result: str = "ok",
                action: str = LOGIN_ACTION, **params) -> None:
    with store.write() as s:
        s.add(AuditEntry(ts=utcnow() - timedelta(seconds=age_s), action=action, user_id=uid,
                         actor="t", resource="", params=params, result=result))


def test_recently_decided_means_decided_with_directory_data_this_interval(store) -> None:
    ids = [synced_user(store, f"r{i}@acme.com") for i in range(7)]
    login_audit(store, ids[0], groups_source="directory")
    login_audit(store, ids[1], groups_source="hub", age_s=5)
    login_audit(store, ids[2], groups_source="none")  # fail-soft: Google said nothing
    login_audit(store, ids[3])  # no groups_source at all
    login_audit(store, ids[4], groups_source="directory", age_s=11)  # before this interval
    login_audit(store, ids[5], groups_source="directory", result="not_in_allowed_group")
    login_audit(store, ids[6], groups_source="directory", action="auth.google.refresh")
    r = refresher(store)
    assert r.recently_decided() == {ids[0], ids[1]}


def test_the_last_interval_includes_its_start_and_only_users_count(store, monkeypatch):
    now = utcnow()
    monkeypatch.setattr(google_refresh, "utcnow", lambda: now)  # the clock stands still
    uid = synced_user(store, "b@acme.com")
    with store.write() as s:  # exactly one interval (10 s) ago; a row naming nobody
        for user_id, ts in ((uid, now - timedelta(seconds=10)), (None, now)):
            s.add(AuditEntry(ts=ts, action=LOGIN_ACTION, user_id=user_id, actor="t",
                             resource="", params={"groups_source": "hub"}, result="ok"))
    assert refresher(store).recently_decided() == {uid}


def test_a_due_run_renews_its_lease_as_it_goes(store) -> None:
    """A run that outlasts its interval keeps the lease: no second server starts one."""
    synced_user(store, "due@acme.com")
    r = refresher(store)
    r.client.groups["due@acme.com"] = [ALLOWED]
    ask = r.client.lookup_groups

    def interval_over_while_asking(email: str) -> list[str]:
        with store.write() as s:
            s.execute(update(Lease).values(expires_at=utcnow()))
        return ask(email)

    r.client.lookup_groups = interval_over_while_asking
    assert r.run_if_due() is not None
    assert 9 < leases.seconds_left(store, LEASE) <= 10


def test_run_if_due_takes_the_lease_and_skips_the_recently_decided(store) -> None:
    recent = synced_user(store, "recent@acme.com")
    due = synced_user(store, "due@acme.com")
    login_audit(store, recent, groups_source="directory")
    r = refresher(store)
    r.client.groups.update({"recent@acme.com": [ALLOWED], "due@acme.com": [ALLOWED]})
    assert leases.try_acquire(store, LEASE, "someone-else", 10)
    assert r.run_if_due() is None and r.client.asked == []
    with store.write() as s:
        s.execute(update(Lease).values(expires_at=utcnow()))
    report = r.run_if_due()
    assert report is not None and r.client.asked == ["due@acme.com"]
    assert (report.checked, report.skipped_recent) == (1, 1)
    assert due != recent


def test_seconds_until_due_is_the_lease_left_capped_at_the_interval_plus_jitter(store):
    r = refresher(store, interval_s=100.0)
    for _ in range(20):  # no lease yet: now, give or take a second
        assert 0.01 <= r.seconds_until_due() <= 1.0
    assert leases.try_acquire(store, LEASE, "other", 50)
    assert 49 < r.seconds_until_due() <= 51
    with store.write() as s:
        s.execute(update(Lease).values(expires_at=utcnow() + timedelta(hours=1)))
    assert 100 < r.seconds_until_due() <= 101
    short = refresher(store, interval_s=2.0)  # jitter: at most 5 % of a short interval
    assert all(2.0 < short.seconds_until_due() <= 2.1 for _ in range(20))
