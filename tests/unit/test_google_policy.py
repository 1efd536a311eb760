"""The Google sign-in policy (pure) and its application to a real system store."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from jupyter_agnes.auth.google_policy import (
    GOOGLE_SYNC_ACTOR,
    POLICY_CODES,
    Allowed,
    Denied,
    GooglePolicyConfig,
    decide,
)
from jupyter_agnes.auth.google_sync import apply_google_login
from jupyter_agnes.auth.login_messages import GENERIC_LOGIN_ERROR, login_error_message
from jupyter_agnes.store.directory import (
    add_member,
    get_group,
    get_or_create_group,
    get_user_by_email,
    user_group_names,
)
from jupyter_agnes.store.models import AuditEntry, Group, Membership, User
from tests.support.migrations import open_migrated_store

ADMIN_G = "agnes-admins@acme.com"
EVERYONE_G = "all-staff@acme.com"


def cfg(**kw: object) -> GooglePolicyConfig:
    base = dict(
        allowed_domains=["acme.com"],
        group_prefix="agnes-",
        admin_group_email=ADMIN_G,
        everyone_group_email=EVERYONE_G,
    )
    base.update(kw)
    return GooglePolicyConfig(**base)


# --- decide: refusals ---------------------------------------------------------


@pytest.mark.parametrize("email", [None, "", "   ", "no-at-sign", "@acme.com"])
def test_missing_email(email: str | None) -> None:
    assert decide(email, True, "acme.com", ["agnes-x@acme.com"], cfg()) == Denied("no_email")


@pytest.mark.parametrize(
    "email",
    ["a" * 312 + "@acme.com", "  " + "a" * 312 + "@acme.com", "a b@acme.com", "a@acme.com\tx"],
)
def test_an_address_the_store_refuses_is_refused_not_cut(email: str) -> None:
    """Over 320 characters (or with a space inside) an address cut to fit would be another
    one; it is refused before any other check, with its own code and sentence."""
    assert decide(email, True, "acme.com", ["agnes-x@acme.com"], cfg()) == Denied("email_unusable")
    assert "cannot be used" in login_error_message("email_unusable")


def test_an_address_of_320_characters_signs_in() -> None:
    email = "a" * 311 + "@acme.com"
    got = decide(email, True, "acme.com", ["agnes-x@acme.com"], cfg())
    assert isinstance(got, Allowed)


def test_an_unusable_address_creates_nobody_and_is_audited_cut(store) -> None:
    email = "b" * 400 + "@acme.com"
    decision = decide(email, True, "acme.com", ["agnes-x@acme.com"], cfg())
    out = apply_google_login(store, email, "", decision)
    assert (out.user_id, out.code) == (None, "email_unusable")
    with store.read() as s:
        assert s.scalar(select(User).where(User.email.startswith("bbb"))) is None
    assert audits(store)[-1][:2] == ("b" * 320, "email_unusable")


@pytest.mark.parametrize("verified", [False, None, "true", 1])
def test_unverified_email(verified: object) -> None:
    got = decide("a@acme.com", verified, "acme.com", ["agnes-x@acme.com"], cfg())  # type: ignore[arg-type]
    assert got == Denied("email_unverified")


@pytest.mark.parametrize(
    ("email", "hd"),
    [
        ("a@evil.com", "evil.com"),
        ("a@acme.com", None),  # consumer account with a company address: no hd
        ("a@acme.com", "evil.com"),
        ("a@evil.com", "acme.com"),
        ("a@acme.com.evil.com", "acme.com"),
    ],
)
def test_domain_not_allowed(email: str, hd: str | None) -> None:
    assert decide(email, True, hd, ["agnes-x@acme.com"], cfg()) == Denied("domain_not_allowed")


def test_empty_allowed_domains_allows_any() -> None:
    got = decide("a@gmail.com", True, None, None, cfg(allowed_domains=[]))
    assert isinstance(got, Allowed)


def test_domain_match_is_case_insensitive() -> None:
    got = decide(
        "A@ACME.com", True, "Acme.COM", ["agnes-x@acme.com"], cfg(allowed_domains=["ACME.com"])
    )
    assert got == Allowed(("agnes-x@acme.com",), False)


def test_not_in_allowed_group() -> None:
    got = decide("a@acme.com", True, "acme.com", ["sales@acme.com", "eng@acme.com"], cfg())
    assert got == Denied("not_in_allowed_group")
    assert got.revokes_synced


def test_no_prefix_keeps_all_groups() -> None:
    got = decide(
        "a@acme.com", True, "acme.com", ["Sales@acme.com", "eng@acme.com"], cfg(group_prefix="")
    )
    assert got == Allowed(("eng@acme.com", "sales@acme.com"), False)


# --- decide: groups ------------------------------------------------------------


def test_prefix_filters_and_lowercases() -> None:
    got = decide(
        "a@acme.com", True, "acme.com", ["AGNES-Analysts@acme.com", "sales@acme.com"], cfg()
    )
    assert got == Allowed(("agnes-analysts@acme.com",), False)


def test_admin_mapping_without_prefix() -> None:
    # the admin group does not carry the prefix: it still maps, and alone lets the user in
    got = decide(
        "a@acme.com",
        True,
        "acme.com",
        [ADMIN_G.replace("agnes-", "ops-")],
        cfg(admin_group_email="ops-admins@acme.com"),
    )
    assert got == Allowed(("Admin",), True)


def test_admin_mapping_with_prefix() -> None:
    got = decide("a@acme.com", True, "acme.com", [ADMIN_G, "agnes-bi@acme.com"], cfg())
    assert got == Allowed(("Admin", "agnes-bi@acme.com"), True)


def test_everyone_mapping_without_prefix() -> None:
    got = decide("a@acme.com", True, "acme.com", [EVERYONE_G], cfg())
    assert got == Allowed(("Everyone",), False)


@pytest.mark.parametrize(
    ("fetched", "code"), [(None, "directory_unavailable"), ([], "not_in_allowed_group")]
)
def test_no_data_is_fail_soft_for_members_only(fetched: list[str] | None, code: str) -> None:
    """Groups gate sign-in: "no data" keeps existing members (fail-soft), and names the
    refusal a newcomer gets (google_sync applies it against the store)."""
    got = decide("a@acme.com", True, "acme.com", fetched, cfg())
    assert got == Allowed((), False, authoritative=False, members_only=code)


@pytest.mark.parametrize("fetched", [None, []])
def test_no_data_without_a_group_gate_lets_anyone_in(fetched: list[str] | None) -> None:
    ungated = cfg(group_prefix="", admin_group_email="", everyone_group_email="")
    got = decide("a@acme.com", True, "acme.com", fetched, ungated)
    assert got == Allowed((), False, authoritative=False)


@pytest.mark.parametrize(
    "gate", [{"group_prefix": "agnes-"}, {"admin_group_email": ADMIN_G}, {"everyone_group_email": EVERYONE_G}]
)
def test_any_group_setting_is_a_gate(gate: dict) -> None:
    config = cfg(**{"group_prefix": "", "admin_group_email": "", "everyone_group_email": "", **gate})
    assert decide("a@acme.com", True, "acme.com", None, config).members_only


def test_invisible_characters_in_a_google_group_skip_it(caplog) -> None:
    """The Directory is not ours: a group name no Agnes group may have is skipped and
    logged, never a failed sign-in (and never a second `Admin`)."""
    fetched = ["agnes-bi\u200b@acme.com", "agnes-\u202eevil@acme.com", "agnes-ok@acme.com"]
    got = decide("a@acme.com", True, "acme.com", fetched, cfg())
    assert got == Allowed(("agnes-ok@acme.com",), False)
    # the admin's log names the group and why (repr: the invisible character shows)
    assert caplog.messages[0] == (
        "Skipping Google group 'agnes-bi\\u200b@acme.com': Group name may not contain "
        "control, zero-width or bidi characters (U+200B)"
    )
    only_bad = decide("a@acme.com", True, "acme.com", fetched[:2], cfg())
    assert only_bad == Denied("not_in_allowed_group")


def test_the_domain_is_what_follows_the_last_at_sign() -> None:
    """A quoted local part may hold an '@' (RFC 5321): the domain is still the last part,
    the same one the re-check passes as the hosted domain."""
    got = decide('"ann@home"@acme.com', True, "acme.com", ["agnes-x@acme.com"], cfg())
    assert got == Allowed(("agnes-x@acme.com",), False)
    assert decide("ann@acme.com@evil.com", True, "acme.com", ["agnes-x@acme.com"], cfg()) == (
        Denied("domain_not_allowed")
    )


def test_group_names_are_lowercased_not_case_folded() -> None:
    """Two Google groups stay two Agnes groups: only lower() is applied, never a folding
    that turns 'ß' into 'ss' (and so merges or renames groups)."""
    got = decide("a@acme.com", True, "acme.com", ["agnes-Straße@acme.com", "agnes-STRASSE@acme.com"], cfg())
    assert got == Allowed(("agnes-strasse@acme.com", "agnes-straße@acme.com"), False)


def test_only_blank_group_entries_are_no_data() -> None:
    got = decide("a@acme.com", True, "acme.com", [None, "", "   "], cfg())  # type: ignore[list-item]
    assert got == Allowed((), False, authoritative=False, members_only="not_in_allowed_group")


def test_hostile_group_entries_ignored() -> None:
    got = decide(
        "a@acme.com", True, "acme.com", ["", "   ", "agnes-x@acme.com", "agnes-x@acme.com"], cfg()
    )
    assert got == Allowed(("agnes-x@acme.com",), False)


def test_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNES_ALLOWED_DOMAINS", " Acme.com, ,other.org")
    monkeypatch.setenv("AGNES_GOOGLE_GROUP_PREFIX", "Agnes-")
    monkeypatch.setenv("AGNES_GROUP_ADMIN_EMAIL", "Admins@Acme.com")
    monkeypatch.setenv("AGNES_GROUP_EVERYONE_EMAIL", "all@acme.com")
    c = GooglePolicyConfig()
    assert c.allowed_domains == ["acme.com", "other.org"]
    assert (c.group_prefix, c.admin_group_email, c.everyone_group_email) == (
        "agnes-",
        "admins@acme.com",
        "all@acme.com",
    )


# --- applying decisions to the store ---------------------------------------------


@pytest.fixture
def store(tmp_path):
    s = open_migrated_store(tmp_path)
    yield s
    s.close()


def memberships(store, email: str) -> dict[str, str]:
    with store.read() as s:
        user = get_user_by_email(s, email)
        rows = s.execute(
            select(Group.name, Membership.source)
            .join(Membership, Membership.group_id == Group.id)
            .where(Membership.user_id == user.id)
        )
        return dict(rows.all())


def audits(store) -> list[tuple[str, str, dict]]:
    with store.read() as s:
        return [
            (a.actor, a.result, a.params)
            for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]


def test_new_user_created_with_synced_groups(store) -> None:
    out = apply_google_login(
        store, "a@acme.com", "Ann", Allowed(("Admin", "agnes-bi@acme.com"), True)
    )
    assert out.ok and out.created
    assert memberships(store, "a@acme.com") == {
        "Admin": "google_sync",
        "Everyone": "system_seed",
        "agnes-bi@acme.com": "google_sync",
    }
    with store.read() as s:
        assert get_group(s, "agnes-bi@acme.com").created_by == GOOGLE_SYNC_ACTOR
        assert get_user_by_email(s, "a@acme.com").name == "Ann"
    assert audits(store)[-1][:2] == ("a@acme.com", "ok")


def test_sync_replaces_only_google_memberships(store) -> None:
    apply_google_login(store, "a@acme.com", "", Allowed(("agnes-old@acme.com", "Admin"), True))
    with store.write() as s:
        user = get_user_by_email(s, "a@acme.com")
        add_member(s, user, get_or_create_group(s, "manual", "admin@acme.com"), "admin", "boss")
    apply_google_login(store, "a@acme.com", "", Allowed(("agnes-new@acme.com",), False))
    assert memberships(store, "a@acme.com") == {
        "Everyone": "system_seed",
        "manual": "admin",
        "agnes-new@acme.com": "google_sync",
    }


def test_admin_added_membership_survives_even_if_google_also_lists_it(store) -> None:
    apply_google_login(store, "a@acme.com", "", Allowed(("agnes-x@acme.com",), False))
    with store.write() as s:
        user = get_user_by_email(s, "a@acme.com")
        add_member(s, user, get_group(s, "Admin"), "admin", "boss")
    apply_google_login(store, "a@acme.com", "", Allowed(("Admin",), True))
    apply_google_login(store, "a@acme.com", "", Allowed((), False))
    assert memberships(store, "a@acme.com")["Admin"] == "admin"


@pytest.mark.parametrize("code", ["directory_unavailable", "not_in_allowed_group"])
def test_members_only_refuses_newcomers_and_keeps_members(store, code: str) -> None:
    no_data = Allowed((), False, authoritative=False, members_only=code)
    out = apply_google_login(store, "new@acme.com", "New", no_data)
    assert not out.ok and out.code == code
    with store.read() as s:
        assert get_user_by_email(s, "new@acme.com") is None  # nobody created
    assert audits(store)[-1][:2] == ("new@acme.com", code)
    # An account with only the automatic Everyone membership is no member either.
    with store.write() as s:
        from jupyter_agnes.store.directory import create_user

        create_user(s, "bare@acme.com")
    assert apply_google_login(store, "bare@acme.com", "", no_data).code == code
    # Synced or admin-given memberships: fail-soft, kept as they were.
    apply_google_login(store, "a@acme.com", "", Allowed(("agnes-x@acme.com",), False))
    with store.write() as s:
        user = get_user_by_email(s, "bare@acme.com")
        add_member(s, user, get_or_create_group(s, "manual", "boss"), "admin", "boss")
    for email in ("a@acme.com", "bare@acme.com"):
        assert apply_google_login(store, email, "", no_data).ok, email
    assert memberships(store, "a@acme.com")["agnes-x@acme.com"] == "google_sync"


def test_a_bad_google_display_name_or_group_is_dropped_not_fatal(store) -> None:
    out = apply_google_login(
        store, "a@acme.com", "Ann\u202e", Allowed(("agnes-x\u200b@acme.com", "agnes-y@acme.com"), False)
    )
    assert out.ok
    assert set(memberships(store, "a@acme.com")) == {"Everyone", "agnes-y@acme.com"}
    with store.read() as s:
        assert get_user_by_email(s, "a@acme.com").name == ""


def test_fail_soft_keeps_previous_synced_memberships(store) -> None:
    apply_google_login(store, "a@acme.com", "", Allowed(("Admin", "agnes-x@acme.com"), True))
    out = apply_google_login(store, "a@acme.com", "", Allowed((), False, authoritative=False))
    assert out.ok
    assert memberships(store, "a@acme.com") == {
        "Admin": "google_sync",
        "Everyone": "system_seed",
        "agnes-x@acme.com": "google_sync",
    }
    assert audits(store)[-1][2]["groups_kept"] is True


def test_successful_fetch_that_denies_removes_synced_memberships(store) -> None:
    apply_google_login(store, "a@acme.com", "", Allowed(("Admin", "agnes-x@acme.com"), True))
    with store.write() as s:
        user = get_user_by_email(s, "a@acme.com")
        add_member(s, user, get_or_create_group(s, "manual", "boss"), "admin", "boss")
    out = apply_google_login(store, "a@acme.com", "", Denied("not_in_allowed_group"))
    assert not out.ok and out.code == "not_in_allowed_group"
    assert memberships(store, "a@acme.com") == {"Everyone": "system_seed", "manual": "admin"}
    actor, result, params = audits(store)[-1]
    assert (actor, result, params["code"], params["removed_memberships"]) == (
        "a@acme.com",
        "not_in_allowed_group",
        "not_in_allowed_group",
        2,
    )


@pytest.mark.parametrize("code", ["email_unverified", "domain_not_allowed"])
def test_identity_refusals_do_not_touch_memberships(store, code: str) -> None:
    apply_google_login(store, "a@acme.com", "", Allowed(("Admin",), True))
    out = apply_google_login(store, "a@acme.com", "", Denied(code))
    assert out.code == code
    assert memberships(store, "a@acme.com")["Admin"] == "google_sync"


def test_refusal_of_unknown_user_creates_nobody(store) -> None:
    out = apply_google_login(store, "z@evil.com", "", Denied("domain_not_allowed"))
    assert out.user_id is None
    with store.read() as s:
        assert get_user_by_email(s, "z@evil.com") is None
    assert audits(store)[-1][:2] == ("z@evil.com", "domain_not_allowed")


def test_deactivated_user_refused_and_unchanged(store) -> None:
    apply_google_login(store, "a@acme.com", "", Allowed(("agnes-x@acme.com",), False))
    with store.write() as s:
        get_user_by_email(s, "a@acme.com").active = False
    out = apply_google_login(store, "a@acme.com", "", Allowed(("Admin",), True))
    assert (out.ok, out.code) == (False, "deactivated")
    assert "Admin" not in memberships(store, "a@acme.com")
    assert audits(store)[-1][1] == "deactivated"


def test_groups_visible_through_user_group_names(store) -> None:
    out = apply_google_login(store, "a@acme.com", "", Allowed(("agnes-x@acme.com",), False))
    with store.read() as s:
        assert user_group_names(s, out.user_id) == ["Everyone", "agnes-x@acme.com"]


def test_every_policy_refusal_has_its_own_sentence() -> None:
    sentences = [login_error_message(code) for code in POLICY_CODES]
    assert GENERIC_LOGIN_ERROR not in sentences
    assert len(set(sentences)) == len(POLICY_CODES)
