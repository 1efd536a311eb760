"""AuthService rules that show across a restart or in what a refusal says: the scheduler
user is seeded once and found again, a bad credential's exception reads as its reason, and
another user's token is "not found" exactly as a missing one (its existence does not leak)."""

from __future__ import annotations

import pytest

from jupyter_agnes.auth.service import TOKEN_UNKNOWN, AuthFailure, AuthService
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import DirectoryError
from jupyter_agnes.store.engine import open_store

SCHEDULER_SECRET = "r" * 40


def test_a_restart_finds_the_seeded_scheduler_user_again(tmp_path):
    store = open_store(resolve_data_dir(tmp_path))
    try:
        ids = []
        for _ in range(2):
            service = AuthService(store, scheduler_token=SCHEDULER_SECRET)
            try:
                scheduler = service.authenticate_bearer(SCHEDULER_SECRET, "127.0.0.1")
                assert scheduler.is_service and scheduler.is_admin
                ids.append(scheduler.user_id)
            finally:
                service.close()
        assert ids[0] == ids[1]
        with store.read() as s:
            assert directory.get_user_by_email(s, directory.SCHEDULER_EMAIL).id == ids[0]
    finally:
        store.close()


def test_an_auth_failure_reads_as_its_reason(tmp_path):
    store = open_store(resolve_data_dir(tmp_path))
    service = AuthService(store)
    try:
        with pytest.raises(AuthFailure) as exc:
            service.authenticate_bearer("agnes_pat_" + "x" * 43, "10.0.0.1")
        assert exc.value.reason == TOKEN_UNKNOWN and str(exc.value) == TOKEN_UNKNOWN
    finally:
        service.close()
        store.close()


def test_another_users_token_is_not_found_like_a_missing_one(tmp_path):
    store = open_store(resolve_data_dir(tmp_path))
    service = AuthService(store)
    try:
        with store.write() as s:
            ann = directory.create_user(s, "ann@example.com").id
            bob = directory.create_user(s, "bob@example.com").id
        token = service.create_token(ann, "t", 5)
        bobs = service.load_principal(bob, "session")
        refusals = []
        for token_id in (token.id, "no-such-token"):
            with pytest.raises(DirectoryError) as exc:
                service.revoke_token(token_id, bob, bobs)
            refusals.append((str(exc.value), exc.value.code, exc.value.status))
        assert refusals == [("Token not found", "token_not_found", 404)] * 2
    finally:
        service.close()
        store.close()
