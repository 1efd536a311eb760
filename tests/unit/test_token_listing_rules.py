"""What AuthService does with PATs beyond checking them: a user's own token lasts the days
asked, listings are newest first (ties by id) and per owner, an in-memory last use shows only
when it is newer than the stored one, shutdown writes held-back uses without undoing a later
one (IP cut to its column), and the operator's first token carries exactly the scopes held."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from jupyter_agnes.auth.principal import Operator
from jupyter_agnes.auth.service import AuthService
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import DirectoryError
from jupyter_agnes.store.engine import Store
from jupyter_agnes.store.models import AuditEntry, PersonalAccessToken


@pytest.fixture
def service(store: Store) -> Iterator[AuthService]:
    made = AuthService(store)
    yield made
    made.close()


def user(store: Store, email: str, *, admin: bool = False) -> int:
    with store.write() as s:
        row = directory.create_user(s, email)
        if admin:
            directory.add_member(s, row, directory.get_group(s, directory.ADMIN_GROUP),
                                 "admin", "test")
        return row.id


def row_of(store: Store, token_id: str) -> PersonalAccessToken:
    with store.read() as s:
        row = s.get(PersonalAccessToken, token_id)
        assert row is not None
        s.expunge(row)
        return row


def test_an_own_token_lasts_the_days_asked(store, service) -> None:
    ann = service.load_principal(user(store, "ann@example.com"), "session")
    for days in (3, 11):
        row = row_of(store, service.create_own_token(ann, f"t{days}", days).id)
        # the two stamps are taken a moment apart
        assert abs(row.expires_at - row.created_at - timedelta(days=days)) < timedelta(seconds=5)


def tied_pair(store: Store, service: AuthService, owner: int, rising: bool) -> list[str]:
    """Two of `owner`'s tokens whose ids rise (or fall) in the order they were made: with
    one pair of each, a tie ordered by creation, either way round, shows."""
    first = service.create_token(owner, "first", 5).id
    while True:
        second = service.create_token(owner, "second", 5).id
        if (first < second) == rising:
            return [first, second]
        with store.write() as s:  # ids are random: make another
            s.delete(s.get(PersonalAccessToken, second))


def test_listing_is_newest_first_ties_by_id_and_per_owner(store, service) -> None:
    ann, bob = user(store, "ann@example.com"), user(store, "bob@example.com")
    oldest = service.create_token(ann, "oldest", 5).id
    rising, falling = (tied_pair(store, service, ann, way) for way in (True, False))
    other = service.create_token(bob, "bobs", 5).id
    base = datetime(2026, 1, 1, tzinfo=UTC)
    stamps = {oldest: base, other: base + timedelta(hours=3)}
    stamps |= {token_id: base + timedelta(hours=1) for token_id in rising}
    stamps |= {token_id: base + timedelta(hours=2) for token_id in falling}
    with store.write() as s:
        for token_id, when in stamps.items():
            s.get(PersonalAccessToken, token_id).created_at = when
    mine = [*sorted(falling), *sorted(rising), oldest]
    assert [t["id"] for t in service.list_tokens(ann)] == mine
    assert [t["id"] for t in service.list_tokens()] == [other, *mine]
    assert [t["id"] for t in service.list_tokens(bob)] == [other]


def test_a_held_back_use_shows_only_when_newer_than_the_stored_one(store, service) -> None:
    ann = user(store, "ann@example.com")
    fresh, used = (service.create_token(ann, name, 5).id for name in ("fresh", "used"))
    future = datetime(2100, 1, 1, tzinfo=UTC)
    with store.write() as s:
        row = s.get(PersonalAccessToken, used)
        row.last_used_at, row.last_used_ip = future, "10.0.0.9"
    for token_id in (fresh, used):
        service.last_use.note(token_id, "192.0.2.7")
    listed = {t["id"]: t for t in service.list_tokens(ann)}
    assert listed[fresh]["last_used_ip"] == "192.0.2.7"
    assert listed[fresh]["last_used_at"] is not None
    assert (listed[used]["last_used_at"], listed[used]["last_used_ip"]) == (
        future.isoformat(), "10.0.0.9")


def test_shutdown_writes_held_back_uses_but_never_an_older_one(store, service) -> None:
    ann = user(store, "ann@example.com")
    fresh, used, gone = (service.create_token(ann, n, 5).id for n in ("fresh", "used", "gone"))
    future = datetime(2100, 1, 1, tzinfo=UTC)
    with store.write() as s:
        row = s.get(PersonalAccessToken, used)
        row.last_used_at, row.last_used_ip = future, "10.0.0.9"
    long_ip = "2001:db8::" + "f" * 90
    for token_id in (fresh, used, gone):
        service.last_use.note(token_id, long_ip)
    with store.write() as s:
        s.delete(s.get(PersonalAccessToken, gone))
    held_at = service.last_use.latest(fresh)[0]
    service.flush_last_use()  # a row deleted meanwhile is skipped, not an error
    written = row_of(store, fresh)
    assert (written.last_used_at, written.last_used_ip) == (held_at, long_ip[:64])
    kept = row_of(store, used)
    assert (kept.last_used_at, kept.last_used_ip) == (future, "10.0.0.9")


def test_the_operators_first_token_carries_exactly_the_scopes_held(store, service) -> None:
    plain, admin = user(store, "ann@example.com"), user(store, "root@example.com", admin=True)
    assert service.list_tokens(plain) == []
    made = {uid: service.create_all_scopes_token(uid, "first").id for uid in (plain, admin)}
    scopes = {t["user_id"]: t["scopes"] for t in service.list_tokens() if t["id"] in made.values()}
    assert scopes == {plain: ["data"], admin: ["data", "lab", "admin"]}
    with pytest.raises(DirectoryError) as exc:
        service.create_all_scopes_token(10_000, "nobody")
    assert (str(exc.value), exc.value.status, exc.value.code) == (
        "User not found", 404, "user_not_found")


def test_the_operators_first_token_names_who_made_it(store, service) -> None:
    root = user(store, "root@example.com", admin=True)
    made = service.create_all_scopes_token(root, "bootstrap", Operator())  # as the CLI does
    with store.read() as s:
        row = s.scalars(select(AuditEntry).where(AuditEntry.action == "token.create")).one()
        assert (row.user_id, row.actor, row.resource) == (None, "cli", f"token:{made.id}")
