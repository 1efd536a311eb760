"""The Google decision's wire form (hub to service), the refusal audit rows and sentences,
and one re-check applied to a real SQLite store (`google_policy`, `google_sync`,
`login_messages`)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from jupyter_agnes.auth.admin_views import list_members
from jupyter_agnes.auth.google_policy import (
    Allowed,
    Denied,
    decision_from_json,
    decision_to_json,
)
from jupyter_agnes.auth.google_sync import (
    LOGIN_ACTION,
    REFRESH_ACTION,
    LoginOutcome,
    RefreshChange,
    apply_google_login,
    apply_google_refresh,
    audit_login_failure,
    login_failure_row,
    refresh_leaves_unchanged,
)
from jupyter_agnes.auth.login_messages import GENERIC_LOGIN_ERROR, login_error_message
from jupyter_agnes.store import directory
from jupyter_agnes.store.models import AuditEntry, Membership, User, utcnow
from jupyter_agnes.store.models import Session as UserSession

G = "agnes-a@acme.com"



# --- the decision over HTTP -----------------------------------------------------------


@pytest.mark.parametrize(
    "decision",
    [
        Denied("not_in_allowed_group"),
        Allowed(("a", "Admin"), True),
        Allowed((), False, False, "directory_unavailable"),
        Allowed(("b",), False, True, "not_in_allowed_group"),
    ],
)
def test_a_decision_survives_its_wire_form(decision) -> None:
    wire = decision_to_json(decision)
    assert decision_from_json(wire) == decision
    assert wire["allowed"] is isinstance(decision, Allowed)


def test_decision_wire_form_fields() -> None:
    assert decision_to_json(Denied("x")) == {"allowed": False, "code": "x"}
    assert decision_to_json(Allowed(("g",), True, False, "")) == {
        "allowed": True, "groups": ["g"], "is_admin": True, "authoritative": False,
        "members_only": "",
    }
    ok = {"allowed": True, "groups": ["g"], "is_admin": False, "authoritative": True}
    assert decision_from_json(ok) == Allowed(("g",), False, True, "")  # members_only optional
    assert decision_from_json({"allowed": False, "code": "c" * 64}) == Denied("c" * 64)
    assert decision_from_json({**ok, "groups": ["g" * 320] * 1000}).groups[0] == "g" * 320


@pytest.mark.parametrize(
    "bad, why",
    [
        ([], "boolean 'allowed'"),
        ({}, "boolean 'allowed'"),
        ({"allowed": 1}, "boolean 'allowed'"),
        ({"allowed": False}, "needs its 'code'"),
        ({"allowed": False, "code": ""}, "needs its 'code'"),
        ({"allowed": False, "code": 5}, "needs its 'code'"),
        ({"allowed": False, "code": "c" * 65}, "needs its 'code'"),
        ({"allowed": True, "is_admin": False, "authoritative": True}, "at most 1000"),
        ({"allowed": True, "groups": "g", "is_admin": False, "authoritative": True}, "at most"),
        ({"allowed": True, "groups": ["g"] * 1001, "is_admin": False, "authoritative": True},
         "at most 1000"),
        ({"allowed": True, "groups": [""], "is_admin": False, "authoritative": True},
         "non-empty name"),
        ({"allowed": True, "groups": [3], "is_admin": False, "authoritative": True},
         "non-empty name"),
        ({"allowed": True, "groups": ["g" * 321], "is_admin": False, "authoritative": True},
         "non-empty name"),
        ({"allowed": True, "groups": [], "is_admin": "no", "authoritative": True}, "booleans"),
        ({"allowed": True, "groups": [], "is_admin": False, "authoritative": None}, "booleans"),
        ({"allowed": True, "groups": [], "is_admin": False, "authoritative": True,
          "members_only": "whatever"}, "empty or a refusal code"),
    ],
)
def test_anything_else_on_the_wire_is_refused(bad, why) -> None:
    with pytest.raises(ValueError, match=why) as info:
        decision_from_json(bad)
    assert str(info.value).startswith("decision: ")  # the hub's log shows what was wrong


def test_members_only_takes_the_two_no_data_codes() -> None:
    base = {"allowed": True, "groups": [], "is_admin": False, "authoritative": False}
    for code in ("not_in_allowed_group", "directory_unavailable"):
        assert decision_from_json({**base, "members_only": code}).members_only == code


# --- refusals: the audit row and the sentence ----------------------------------------


def test_a_refusal_before_any_decision_is_audited_with_a_clean_email(store) -> None:
    row = login_failure_row("state_mismatch", "  Ann@ACME.com ", "9" * 70)
    assert (row["action"], row["actor"], row["resource"], row["result"]) == (
        LOGIN_ACTION, "ann@acme.com", "user:ann@acme.com", "state_mismatch"
    )
    assert row["params"] == {"email": "ann@acme.com", "code": "state_mismatch", "ip": "9" * 64}
    bare = login_failure_row("oauth_failed")
    assert (bare["actor"], bare["resource"]) == ("", "")
    assert bare["params"] == {"email": "", "code": "oauth_failed"}
    assert login_failure_row("x", "e" * 400)["actor"] == "e" * 320
    audit_login_failure(store, "rate_limited", "b@acme.com", "1.2.3.4")
    with store.read() as s:
        [entry] = s.scalars(select(AuditEntry)).all()
        assert (entry.action, entry.actor, entry.result, entry.params) == (
            LOGIN_ACTION, "b@acme.com", "rate_limited",
            {"email": "b@acme.com", "code": "rate_limited", "ip": "1.2.3.4"},
        )
    audit_login_failure(store, "oauth_failed")  # before Google named anyone
    with store.read() as s:
        entry = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert (entry.actor, entry.params) == ("", {"email": "", "code": "oauth_failed"})


def test_each_refusal_has_its_sentence_and_unknown_codes_a_generic_one() -> None:
    assert "not verified" in login_error_message("email_unverified")
    assert "deactivated" in login_error_message("deactivated")
    for code in (None, "", "<script>", "no-such-code"):
        assert login_error_message(code) == GENERIC_LOGIN_ERROR == "Sign-in failed. Please try again."


def login_rows(store) -> list[AuditEntry]:
    with store.read() as s:
        query = select(AuditEntry).where(AuditEntry.action == LOGIN_ACTION)
        return list(s.scalars(query.order_by(AuditEntry.id)))


def test_a_refusal_names_the_known_user_in_its_audit_row(store) -> None:
    """The audit row of a refused sign-in carries the user's id when there is one (their
    history lists it), the address as actor and resource, and the code."""
    uid = member(store, "k@acme.com", G)
    off = member(store, "off@acme.com", active=False)
    out = apply_google_login(store, " K@acme.com", "", Denied("not_in_allowed_group"))
    assert out == LoginOutcome(user_id=None, code="not_in_allowed_group")
    apply_google_login(store, "off@acme.com", "", Allowed((G,), False), ip="10.0.0.1")
    apply_google_login(store, "nobody@acme.com", "", Denied("domain_not_allowed"))
    rows = login_rows(store)
    assert [(r.user_id, r.actor, r.resource, r.result) for r in rows] == [
        (uid, "k@acme.com", "user:k@acme.com", "not_in_allowed_group"),
        (off, "off@acme.com", "user:off@acme.com", "deactivated"),
        (None, "nobody@acme.com", "user:nobody@acme.com", "domain_not_allowed"),
    ]
    assert [r.params for r in rows] == [
        {"removed_memberships": 1, "email": "k@acme.com", "code": "not_in_allowed_group"},
        {"ip": "10.0.0.1", "email": "off@acme.com", "code": "deactivated"},
        {"email": "nobody@acme.com", "code": "domain_not_allowed"},
    ]


def test_members_only_lets_in_anyone_with_more_than_the_automatic_everyone(store) -> None:
    """The Directory cannot answer: a newcomer, or someone with only the automatic
    Everyone membership, waits; any other membership (synced, an admin's, the bootstrap
    admin's seeded Admin) keeps fail-soft. Other people's memberships do not count."""
    no_data = Allowed((), False, authoritative=False, members_only="directory_unavailable")
    member(store, "m@acme.com", G)
    with store.write() as s:
        bare = directory.create_user(s, "bare@acme.com")
        boot = directory.create_user(s, "boot@acme.com")
        directory.add_member(s, boot, directory.get_group(s, "Admin"), "system_seed", "system")
        assert bare.id != boot.id
    assert apply_google_login(store, "bare@acme.com", "", no_data).code == "directory_unavailable"
    assert apply_google_login(store, "new@acme.com", "", no_data).code == "directory_unavailable"
    assert apply_google_login(store, "boot@acme.com", "", no_data).ok
    assert apply_google_login(store, "m@acme.com", "", no_data).ok


def test_fail_soft_keeps_and_reports_only_this_users_synced_groups(store) -> None:
    member(store, "x@acme.com", "agnes-x@acme.com")
    uid = member(store, "y@acme.com", G)
    out = apply_google_login(store, "y@acme.com", "", Allowed((), False, authoritative=False))
    assert out == LoginOutcome(user_id=uid, groups=(G,))
    params = login_rows(store)[-1].params
    assert (params["groups"], params["groups_kept"], params["groups_source"]) == ([G], True, "none")
    assert groups_of(store, uid) == ["Everyone", G, "manual"]


def test_a_login_outcome_is_ok_only_with_a_user() -> None:
    assert LoginOutcome(user_id=3).ok and LoginOutcome(user_id=3).code == "ok"
    assert not LoginOutcome(user_id=None, code="no_email").ok


# --- one re-check on the store ----------------------------------------------------------


def member(store, email: str, *groups: str, sessions: int = 1, **fields) -> int:
    with store.write() as s:
        user = directory.create_user(s, email)
        for key, value in fields.items():
            setattr(user, key, value)
        for name in groups:
            directory.add_member(s, user, directory.get_or_create_group(s, name, "t"),
                                 "google_sync", "t")
        directory.add_member(s, user, directory.get_or_create_group(s, "manual", "t"),
                             "admin", "t")
        s.flush()
        for i in range(sessions):
            s.add(UserSession(id=f"{email}-{i}", user_id=user.id, auth_method="google",
                              expires_at=utcnow() + timedelta(hours=1)))
        s.add(UserSession(id=f"{email}-old", user_id=user.id,  # expired: not counted
                          expires_at=utcnow() - timedelta(hours=1)))
        return user.id


def refresh(store, uid: int, verdict):
    with store.write() as s:
        return apply_google_refresh(s, uid, verdict)


def groups_of(store, uid: int) -> list[str]:
    with store.read() as s:
        return directory.user_group_names(s, uid)


def refresh_rows(store) -> list[AuditEntry]:
    with store.read() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == REFRESH_ACTION)))


def live_sessions(store, uid: int) -> int:
    with store.read() as s:
        return len(s.scalars(select(UserSession).where(
            UserSession.user_id == uid, UserSession.revoked_at.is_(None),
            UserSession.expires_at > utcnow())).all())


def test_a_refusal_removes_synced_groups_and_ends_sessions_only(store) -> None:
    uid = member(store, "a@acme.com", G, "agnes-b@acme.com", sessions=2)
    change = refresh(store, uid, Denied("not_in_allowed_group"))
    assert change == RefreshChange("a@acme.com", "not_in_allowed_group",
                                   removed=(G, "agnes-b@acme.com"), sessions_revoked=2)
    assert groups_of(store, uid) == ["Everyone", "manual"] and live_sessions(store, uid) == 0
    [row] = refresh_rows(store)
    assert (row.user_id, row.actor, row.resource, row.result) == (
        uid, "system:google-refresh", "user:a@acme.com", "not_in_allowed_group"
    )
    assert row.params == {"reason": "not_in_allowed_group", "added": [],
                          "removed": [G, "agnes-b@acme.com"], "sessions_revoked": 2,
                          "deactivated": False}
    assert refresh(store, uid, Denied("not_in_allowed_group")) is None  # nothing left to do
    assert len(refresh_rows(store)) == 1


def test_a_refusal_with_sessions_but_no_synced_groups_still_ends_them(store) -> None:
    uid = member(store, "b@acme.com")
    change = refresh(store, uid, Denied("domain_not_allowed"))
    assert change is not None and change.removed == () and change.sessions_revoked == 1
    assert live_sessions(store, uid) == 0
    synced_only = member(store, "c@acme.com", G, sessions=0)
    assert refresh(store, synced_only, Denied("x")).removed == (G,)


def test_unknown_to_the_directory_is_deactivated(store) -> None:
    uid = member(store, "d@acme.com", G)
    change = refresh(store, uid, None)
    assert change == RefreshChange("d@acme.com", "not_in_directory", removed=(G,),
                                   sessions_revoked=1, deactivated=True)
    with store.read() as s:
        assert s.get(User, uid).active is False
    assert refresh_rows(store)[0].result == "not_in_directory"
    assert refresh(store, uid, None) is None  # inactive already: left alone


def test_new_groups_follow_and_only_a_real_change_is_audited(store) -> None:
    uid = member(store, "e@acme.com", G, "agnes-old@acme.com")
    assert refresh(store, uid, Allowed((G, "agnes-old@acme.com"), False)) is None
    assert refresh(store, uid, Allowed(("agnes-new@acme.com",), False, False)) is None
    change = refresh(store, uid, Allowed((G, "agnes-new@acme.com", "agnes-z@acme.com"), False))
    assert change == RefreshChange("e@acme.com", "groups_changed",
                                   added=("agnes-new@acme.com", "agnes-z@acme.com"),
                                   removed=("agnes-old@acme.com",))
    assert live_sessions(store, uid) == 1  # still allowed: sessions stay
    [row] = refresh_rows(store)
    assert row.result == "ok" and row.params["added"] == ["agnes-new@acme.com", "agnes-z@acme.com"]


def test_service_inactive_and_missing_users_are_never_changed(store) -> None:
    svc = member(store, "svc@acme.com", G, is_service=True)
    off = member(store, "off@acme.com", G, active=False)
    for uid in (svc, off, 9999):
        assert refresh(store, uid, Denied("not_in_allowed_group")) is None
    assert G in groups_of(store, svc) and refresh_rows(store) == []


def test_unchanged_verdicts_need_no_write(store) -> None:
    same = member(store, "s@acme.com", G)
    other = member(store, "o@acme.com", G)
    none = member(store, "n@acme.com")
    verdicts = [
        (same, Allowed((G,), False)),
        (other, Allowed((G, "agnes-b@acme.com"), False)),
        (none, Allowed((), False, authoritative=False)),  # no data: keep what they have
        (42, Denied("x")),
        (43, None),
    ]
    with store.read() as s:
        assert refresh_leaves_unchanged(s, verdicts) == {same, none}
        assert refresh_leaves_unchanged(s, [(none, Allowed((), False))]) == {none}
        assert refresh_leaves_unchanged(s, []) == set()


def test_a_change_describes_itself_for_the_log() -> None:
    assert RefreshChange("a@x", "groups_changed").describe() == "a@x: groups_changed"
    full = RefreshChange("a@x", "not_in_directory", ("n1", "n2"), ("o1", "o2"), 3, True)
    assert full.describe() == (
        "a@x: not_in_directory; deactivated; left o1, o2; joined n1, n2; 3 session(s) revoked"
    )


# --- a sign-in's audit row, its log lines and the stored name ---------------------------


def test_a_sign_in_audits_the_address_the_groups_their_source_and_a_new_account(store) -> None:
    """The hub's door passes no `groups_source`: its groups came from the Directory."""
    out = apply_google_login(store, " New@ACME.com", "New", Allowed((G,), False), ip="10.0.0.9")
    apply_google_login(store, "new@acme.com", "New", Allowed((G,), False), groups_source="mock")
    first, second = login_rows(store)
    assert (first.user_id, first.actor, first.resource, first.result) == (
        out.user_id, "new@acme.com", "user:new@acme.com", "ok"
    )
    assert first.params == {"ip": "10.0.0.9", "groups": [G], "groups_source": "directory",
                            "created": True, "email": "new@acme.com", "code": "ok"}
    assert second.params == {"groups": [G], "groups_source": "mock",
                             "email": "new@acme.com", "code": "ok"}


@pytest.mark.parametrize(
    "email, ip, code, actor, params",
    [
        (None, "", "no_email", "", {}),
        # both cut to their columns: audit_log.actor holds 320, an address at most 320 too
        ("A" * 330 + "@acme.com", "9" * 70, "domain_not_allowed", "a" * 320, {"ip": "9" * 64}),
        ("x@acme.com", "1.2.3.4", "not_in_allowed_group", "x@acme.com", {"ip": "1.2.3.4"}),
    ],
)
def test_a_refusal_row_holds_the_cut_address_and_ip(store, email, ip, code, actor, params) -> None:
    apply_google_login(store, email, "", Denied(code), ip=ip)
    [row] = login_rows(store)
    assert (row.user_id, row.actor, row.resource, row.result) == (None, actor, f"user:{actor}", code)
    assert row.params == {**params, "email": actor, "code": code}


def test_a_refusal_counts_the_synced_memberships_it_removed_even_none(store) -> None:
    uid = member(store, "k@acme.com")  # only the automatic Everyone and an admin's `manual`
    apply_google_login(store, "k@acme.com", "", Denied("not_in_allowed_group"))
    [row] = login_rows(store)
    assert (row.user_id, row.params["removed_memberships"]) == (uid, 0)
    assert groups_of(store, uid) == ["Everyone", "manual"]


def test_a_members_only_refusal_names_the_known_user(store) -> None:
    with store.write() as s:
        uid = directory.create_user(s, "bare@acme.com").id
    no_data = Allowed((), False, authoritative=False, members_only="not_in_allowed_group")
    assert not apply_google_login(store, "bare@acme.com", "", no_data).ok
    [row] = login_rows(store)
    assert (row.user_id, row.result) == (uid, "not_in_allowed_group")


def warnings_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "jupyter_agnes.auth.google" and r.levelname == "WARNING"]


def test_what_a_sign_in_drops_or_keeps_is_logged_for_the_operator(store, caplog) -> None:
    caplog.set_level("WARNING", "jupyter_agnes.auth.google")
    bad = Allowed(("agnes-x\u200b@acme.com", G), False)
    apply_google_login(store, "a@acme.com", "Ann\u202e", bad)
    apply_google_login(store, "a@acme.com", "Ann", Allowed((), False, authoritative=False))
    refused = "may not contain control, zero-width or bidi characters"
    assert warnings_logged(caplog) == [
        f"Ignoring the Google display name of a@acme.com: name {refused} (U+202E)",
        f"Skipping Google group 'agnes-x\\u200b@acme.com': Group name {refused} (U+200B)",
        "Google group data unavailable for a@acme.com; keeping previous synced memberships",
    ]


def stored_name(store, email: str) -> str:
    with store.read() as s:
        return directory.get_user_by_email(s, email).name


def test_the_stored_name_follows_google_cut_to_200_and_no_name_keeps_it(store) -> None:
    steps = [("", ""), ("Ann", "Ann"), ("Ann B", "Ann B"), ("", "Ann B"), ("n" * 250, "n" * 200)]
    for given, kept in steps:  # the first: a newcomer without a Google name
        apply_google_login(store, "a@acme.com", given, Allowed((), False))
        assert stored_name(store, "a@acme.com") == kept, given
    apply_google_login(store, "b@acme.com", "m" * 250, Allowed((), False))
    assert stored_name(store, "b@acme.com") == "m" * 200


def test_a_kept_synced_membership_keeps_its_date_and_the_sync_as_who_added_it(store) -> None:
    """The admin's member list shows who added each member and since when: a sign-in that
    still lists a group leaves that row as it was."""
    uid = apply_google_login(store, "a@acme.com", "", Allowed((G,), False)).user_id
    since = utcnow() - timedelta(days=30)
    with store.write() as s:
        s.get(Membership, (uid, directory.get_group(s, G).id)).added_at = since
    apply_google_login(store, "a@acme.com", "", Allowed((G, "agnes-b@acme.com"), False))
    with store.read() as s:
        kept = list_members(s, directory.get_group(s, G).id)
        new = list_members(s, directory.get_group(s, "agnes-b@acme.com").id)
    assert [(m["added_by"], m["added_at"]) for m in kept] == [
        ("system:google-sync", since.isoformat())
    ]
    assert [(m["source"], m["added_by"]) for m in new] == [("google_sync", "system:google-sync")]
