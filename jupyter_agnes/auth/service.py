"""Resolving credentials to principals: the one place that decides what a credential means.

Adapters (the jupyter-server identity provider, the hub, the CLI) call this; none
of them re-implements a rule.
"""

from __future__ import annotations

import hmac
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from traitlets import Bool, Int, Unicode, default
from traitlets.config import Configurable

from jupyter_agnes.auth import pat as pats
from jupyter_agnes.auth.principal import ALL_SCOPES, SCOPES, Actor, Principal
from jupyter_agnes.auth.principal_cache import PrincipalCache
from jupyter_agnes.auth.sessions import (
    MIN_SECRET_LEN,
    create_session,
    decode_session_jwt,
    encode_session_jwt,
    load_jwt_secret,
    revoke_session,
)
from jupyter_agnes.envknobs import env_bool, env_int, env_str, local_dev_mode
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import DirectoryError
from jupyter_agnes.store.engine import BACKGROUND_WAIT_S, Store
from jupyter_agnes.store.models import Grant, Membership, PersonalAccessToken, User, utcnow
from jupyter_agnes.store.models import Session as SessionRow

log = logging.getLogger("jupyter_agnes.auth")

MAX_CREDENTIAL_LEN = 512


class AuthFailure(Exception):
    """A credential was presented and is bad; `reason` is safe to show the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


TOKEN_UNKNOWN = "Token unknown"
TOKEN_REVOKED = "Token revoked"
TOKEN_EXPIRED = "Token expired"
ACCOUNT_DEACTIVATED = "Account deactivated"
TOKEN_MALFORMED = "Invalid or expired token"
UNSUPPORTED_SCHEME = "Unsupported authorization scheme; use 'Authorization: Bearer <token>'"


def _principal_of(
    s: Any, user: User, auth: str, credential_id: str, scopes: frozenset[str]
) -> Principal:
    groups = directory.user_group_names(s, user.id)
    grants = s.execute(
        select(Grant.resource_type, Grant.resource_id)
        .join(Membership, Membership.group_id == Grant.group_id)
        .where(Membership.user_id == user.id)
    ).all()
    return Principal(
        user_id=user.id,
        email=user.email,
        name=user.name,
        groups=tuple(groups),
        is_admin=directory.ADMIN_GROUP in groups,
        auth=auth,
        is_service=user.is_service,
        grants=frozenset((t, r) for t, r in grants),
        credential_id=credential_id,
        scopes=scopes,
    )


def _owner_rights(s: Any, owner: User) -> Principal:
    """The owner's rights as such, through no credential: what a new token's scopes are
    checked against (`scopes_held`)."""
    return _principal_of(s, owner, "pat", "", ALL_SCOPES)


@dataclass(frozen=True)
class _CachedPat:
    principal: Principal
    token_id: str
    expires_at: datetime


class AuthService(Configurable):
    """Credentials: PATs, sessions, the scheduler token and local dev mode."""

    pat_default_days = Int(90, config=True, help="Default PAT lifetime in days.")
    pat_max_days = Int(config=True, help="Longest PAT lifetime allowed (AGNES_PAT_MAX_DAYS).")
    session_hours = Int(config=True, help="Browser session lifetime (AGNES_SESSION_HOURS).")
    jwt_secret = Unicode(
        config=True, help="Session signing secret, >= 32 chars (AGNES_JWT_SECRET)."
    )
    scheduler_token = Unicode(
        config=True, help="Bearer secret for the scheduler service user (SCHEDULER_API_TOKEN)."
    )
    local_dev_mode = Bool(
        config=True, help="Sign every request in as the dev user (LOCAL_DEV_MODE)."
    )
    local_dev_user_email = Unicode(config=True, help="Dev user email (LOCAL_DEV_USER_EMAIL).")
    local_dev_groups = Unicode(
        config=True, help='Dev user groups, JSON [{"id","name"}] (LOCAL_DEV_GROUPS).'
    )
    secure_cookies = Bool(config=True, help="Force Secure cookies (AGNES_SECURE_COOKIES).")

    @default("pat_max_days")
    def _pat_max_days(self) -> int:
        return env_int("AGNES_PAT_MAX_DAYS", 365, minimum=1)

    @default("session_hours")
    def _session_hours(self) -> int:
        return env_int("AGNES_SESSION_HOURS", 24, minimum=1)

    @default("jwt_secret")
    def _jwt_secret(self) -> str:
        return env_str("AGNES_JWT_SECRET")

    @default("scheduler_token")
    def _scheduler_token(self) -> str:
        return env_str("SCHEDULER_API_TOKEN")

    @default("local_dev_mode")
    def _local_dev_mode(self) -> bool:
        return local_dev_mode()

    @default("local_dev_user_email")
    def _local_dev_user_email(self) -> str:
        return env_str("LOCAL_DEV_USER_EMAIL", "dev@localhost")

    @default("local_dev_groups")
    def _local_dev_groups(self) -> str:
        return env_str("LOCAL_DEV_GROUPS")

    @default("secure_cookies")
    def _secure_cookies(self) -> bool:
        return env_bool("AGNES_SECURE_COOKIES")

    def __init__(self, store: Store, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store
        self.signing_secret = load_jwt_secret(self.jwt_secret, store.data_dir)
        self.last_use = pats.LastUseRecorder()
        # Last-use writes run here, never on the request: a busy store must not hold it up.
        self._use_writer = ThreadPoolExecutor(1, thread_name_prefix="agnes-last-use")
        self._cache = PrincipalCache(store.engine)
        self._seen_ips: dict[str, set[str]] = {}
        self._scheduler_secret = self._checked_scheduler_token()
        self._scheduler_user_id = self._seed_scheduler() if self._scheduler_secret else None
        self._dev_user_id = self._seed_dev_user() if self.local_dev_mode else None

    # --- seeding ---------------------------------------------------------------

    def _checked_scheduler_token(self) -> str:
        token = self.scheduler_token
        if token and len(token) < MIN_SECRET_LEN:
            log.warning(
                "SCHEDULER_API_TOKEN is shorter than %d characters; ignoring it", MIN_SECRET_LEN
            )
            return ""
        return token

    def _seed_scheduler(self) -> int:
        with self.store.write() as s:
            user = directory.get_user_by_email(s, directory.SCHEDULER_EMAIL)
            if user is None:
                user = directory.create_user(s, directory.SCHEDULER_EMAIL, "Scheduler", True)
            directory.add_member(
                s, user, directory.get_group(s, directory.ADMIN_GROUP), "system_seed", "system"
            )
            return user.id

    def _dev_groups(self) -> list[str]:
        raw = self.local_dev_groups
        if not raw:
            return []
        try:
            items = json.loads(raw)
            names = [str(item["name"]) for item in items if isinstance(item, dict)]
            if not isinstance(items, list) or not all(names):
                raise ValueError  # caught below: one warning for every malformed value
            return names
        except (ValueError, KeyError, TypeError):
            log.warning('LOCAL_DEV_GROUPS is not a JSON array of {"id","name"}; ignoring it')
            return []

    def _seed_dev_user(self) -> int:
        with self.store.write() as s:
            user = directory.get_or_create_user(s, self.local_dev_user_email, "Local developer")
            admin = directory.get_group(s, directory.ADMIN_GROUP)
            directory.add_member(s, user, admin, "system_seed", "system:local-dev")
            for name in self._dev_groups():
                group = directory.get_or_create_group(s, name, "system:local-dev")
                directory.add_member(s, user, group, "system_seed", "system:local-dev")
            return user.id

    # --- principals --------------------------------------------------------------

    def load_principal(
        self,
        user_id: int,
        auth: str,
        credential_id: str = "",
        scopes: frozenset[str] = ALL_SCOPES,
    ) -> Principal | None:
        """The active user's principal through a credential carrying `scopes`, or None."""
        with self.store.read() as s:
            user = s.get(User, user_id)
            if user is None or not user.active:
                return None
            return _principal_of(s, user, auth, credential_id, scopes)

    def principal_for_email(self, email: str, auth: str) -> Principal | None:
        """The active user with this email (signed in elsewhere, e.g. JupyterHub), or None.
        Cached like PATs: every request of a hub user resolves through here."""
        try:
            key = f"email:{auth}:{directory.normalize_email(email)}"
        except directory.DirectoryError:
            return None
        cached: Principal | None
        cached, version = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            with self.store.read() as s:
                row = directory.get_user_by_email(s, email)
                user_id = row.id if row is not None else None
        except directory.DirectoryError:
            return None
        principal = self.load_principal(user_id, auth) if user_id is not None else None
        if principal is not None:
            self._cache.put(key, principal, version)
        return principal

    def dev_principal(self) -> Principal | None:
        if self._dev_user_id is None:
            return None
        return self.load_principal(self._dev_user_id, "dev")

    # --- bearer credentials --------------------------------------------------------

    def authenticate_header(self, header: str, ip: str) -> Principal:
        """Resolve an `Authorization` header value; raise AuthFailure with the reason."""
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            raise AuthFailure(UNSUPPORTED_SCHEME)
        return self.authenticate_bearer(value.strip(), ip)

    def authenticate_bearer(self, raw: str, ip: str) -> Principal:
        if not raw or len(raw) > MAX_CREDENTIAL_LEN or not raw.isascii():
            raise AuthFailure(TOKEN_MALFORMED)
        if self._scheduler_secret and hmac.compare_digest(
            raw.encode(), self._scheduler_secret.encode()
        ):
            assert self._scheduler_user_id is not None
            principal = self.load_principal(self._scheduler_user_id, "scheduler")
            if principal is None:
                raise AuthFailure(ACCOUNT_DEACTIVATED)
            return principal
        if not pats.looks_like_pat(raw):
            raise AuthFailure(TOKEN_MALFORMED)
        key = pats.hash_token(raw)
        cached, version = self._cache.get(key)
        if cached is None:
            cached = self._load_pat(raw)
            self._cache.put(key, cached, version)
        if cached.expires_at <= utcnow():
            raise AuthFailure(TOKEN_EXPIRED)
        self._note_use(cached.token_id, cached.principal, ip)
        return cached.principal

    def _load_pat(self, raw: str) -> _CachedPat:
        with self.store.read() as s:
            row = pats.find_by_raw(s, raw)
            if row is None:
                raise AuthFailure(TOKEN_UNKNOWN)
            if row.revoked_at is not None:
                raise AuthFailure(TOKEN_REVOKED)
            token_id, user_id, expires_at = row.id, row.user_id, row.expires_at
            scopes = pats.scopes_from_column(row.scopes)
            if row.last_used_ip:
                self._seen_ips.setdefault(token_id, set()).add(row.last_used_ip)
        if expires_at <= utcnow():
            raise AuthFailure(TOKEN_EXPIRED)
        # The owner's rights are read here, and re-read whenever identity_version moves:
        # a scope stops working the moment its right is taken away.
        principal = self.load_principal(user_id, "pat", token_id, scopes)
        if principal is None:
            raise AuthFailure(ACCOUNT_DEACTIVATED)
        return _CachedPat(principal, token_id, expires_at)

    def _note_use(self, token_id: str, principal: Principal, ip: str) -> None:
        seen = self._seen_ips.setdefault(token_id, set())
        new_ip = bool(seen) and ip not in seen and len(seen) < 1000
        seen.add(ip)
        if not self.last_use.note(token_id, ip) and not new_ip:
            return
        try:
            self._use_writer.submit(self._write_use, token_id, principal, ip, new_ip)
        except RuntimeError:  # after close: write in the caller
            self._write_use(token_id, principal, ip, new_ip)

    def wait_for_recorded_uses(self, timeout: float = 30.0) -> None:
        """Return once every last-use write queued so far has run (tests, shutdown)."""
        try:
            self._use_writer.submit(lambda: None).result(timeout)
        except RuntimeError:  # closed: nothing is queued
            pass

    def _write_use(self, token_id: str, principal: Principal, ip: str, new_ip: bool) -> None:
        when, _ = self.last_use.latest(token_id) or (utcnow(), ip)
        try:
            self._record_use(token_id, principal, ip, new_ip, when)
        except OperationalError:  # kept in memory; written by the next use or at shutdown
            log.warning("could not record the last use of token %s: the store is busy", token_id)

    def _record_use(
        self, token_id: str, principal: Principal, ip: str, new_ip: bool, when: datetime
    ) -> None:
        with self.store.write(BACKGROUND_WAIT_S) as s:
            row = s.get(PersonalAccessToken, token_id)
            if row is not None:
                row.last_used_at, row.last_used_ip = when, ip[:64]
            if new_ip:
                directory.audit(
                    s,
                    "token.first_use_new_ip",
                    user_id=principal.user_id,
                    actor=principal.email,
                    resource=f"token:{token_id}",
                    params={"ip": ip},
                )

    # --- sessions ------------------------------------------------------------------

    def start_session(self, user_id: int, method: str, ip: str = "") -> tuple[str, datetime]:
        """Create a session row; return the cookie value and its expiry."""
        with self.store.write() as s:
            user = s.get(User, user_id)
            if user is None or not user.active:
                raise AuthFailure(ACCOUNT_DEACTIVATED)
            row = create_session(s, user_id, self.session_hours, method, ip)
            directory.audit(
                s,
                "session.start",
                user_id=user_id,
                actor=user.email,
                params={"method": method, "ip": ip},
            )
            return encode_session_jwt(
                self.signing_secret, row.id, user_id, row.expires_at
            ), row.expires_at

    def authenticate_session(self, cookie_value: str) -> Principal | None:
        sid = decode_session_jwt(self.signing_secret, cookie_value)
        if sid is None:
            return None
        key = "session:" + sid
        cached, version = self._cache.get(key)
        if cached is None:
            cached = self._load_session(sid)
            self._cache.put(key, cached, version)
        principal, expires_at = cached
        if principal is None or expires_at <= utcnow():
            return None
        return principal

    def _load_session(self, sid: str) -> tuple[Principal | None, datetime]:
        with self.store.read() as s:
            row = s.get(SessionRow, sid)
            if row is None or row.revoked_at is not None:
                return None, utcnow()
            user_id, expires_at = row.user_id, row.expires_at
        return self.load_principal(user_id, "session", sid), expires_at

    def end_session(self, session_id: str) -> None:
        with self.store.write() as s:
            revoke_session(s, session_id)

    # --- tokens --------------------------------------------------------------------

    def create_token(
        self,
        user_id: int,
        name: object,
        days: object,
        actor: Actor | None = None,
        scopes: object = None,
    ) -> pats.CreatedToken:
        """Validate and create a PAT for `user_id`, on behalf of `actor` (default: that
        user), carrying `scopes` (default `data`); a scope beyond the owner's rights is
        refused. DirectoryError carries the 400 message."""
        try:
            clean_name = pats.validate_token_name(name)
            lifetime = pats.validate_lifetime(days, self.pat_default_days, self.pat_max_days)
            clean_scopes = pats.validate_scopes(scopes)
        except ValueError as exc:
            raise DirectoryError(str(exc), "invalid_token_request") from exc
        with self.store.write() as s:
            owner = s.get(User, user_id)
            if owner is None:
                raise DirectoryError("User not found", "user_not_found", 404)
            rights = _owner_rights(s, owner)
            refusal = pats.scope_refusal(rights, clean_scopes)
            if refusal is not None:
                raise DirectoryError(refusal, "scope_not_held")
            created = pats.create_pat(s, user_id, clean_name, lifetime, clean_scopes)
            directory.audit(
                s,
                "token.create",
                user_id=user_id if actor is None else actor.user_id,
                actor="" if actor is None else actor.email,
                resource=f"token:{created.id}",
                params={"name": clean_name, "owner_id": user_id, "scopes": list(clean_scopes)},
            )
            return created

    def create_all_scopes_token(
        self, user_id: int, name: str, actor: Actor | None = None
    ) -> pats.CreatedToken:
        """A PAT carrying every scope `user_id` holds: the operator's first credential
        (`bootstrap`, `quickstart`), which existing scripts use for Jupyter's APIs too."""
        with self.store.read() as s:
            owner = s.get(User, user_id)
            if owner is None:
                raise DirectoryError("User not found", "user_not_found", 404)
            held = _owner_rights(s, owner).scopes_held()
        return self.create_token(user_id, name, None, actor, [x for x in SCOPES if x in held])

    def create_own_token(
        self,
        principal: Principal,
        name: object,
        days: object,
        *,
        api_token: bool = False,
        scopes: object = None,
    ) -> pats.CreatedToken:
        """A signed-in user's new PAT. Only an interactive sign-in may mint one: a PAT that
        could mint PATs would make any leaked token permanent (403 otherwise)."""
        refusal = pats.mint_refusal(principal.auth, api_token)
        if refusal is not None:
            raise DirectoryError(refusal, "interactive_session_required", 403)
        return self.create_token(principal.user_id, name, days, principal, scopes)

    def list_tokens(self, user_id: int | None = None) -> list[dict[str, Any]]:
        query = select(PersonalAccessToken).order_by(
            PersonalAccessToken.created_at.desc(), PersonalAccessToken.id
        )
        if user_id is not None:
            query = query.where(PersonalAccessToken.user_id == user_id)
        with self.store.read() as s:
            return [pats.token_model(r, self.last_use.latest(r.id)) for r in s.scalars(query)]

    def revoke_token(self, token_id: str, user_id: int | None, actor: Actor) -> None:
        """Revoke a token (with `user_id`, only that user's: another's is "not found");
        a second revoke is 409 `Token already revoked` over REST and in the CLI alike."""
        with self.store.write() as s:
            row = s.get(PersonalAccessToken, token_id)
            if row is None or user_id not in (None, row.user_id):
                raise DirectoryError("Token not found", "token_not_found", 404)
            if not pats.revoke_pat(s, token_id, user_id):
                raise DirectoryError("Token already revoked", "token_revoked", 409)
            directory.audit(
                s,
                "token.revoke",
                user_id=actor.user_id,
                actor=actor.email,
                resource=f"token:{token_id}",
            )

    def flush_last_use(self) -> None:
        """Write every in-memory last use the throttle held back (at shutdown)."""
        self._use_writer.shutdown(wait=True)
        held = self.last_use.snapshot()
        if not held:
            return
        with self.store.write() as s:
            for token_id, (when, ip) in held.items():
                row = s.get(PersonalAccessToken, token_id)
                if row is not None and (row.last_used_at is None or row.last_used_at < when):
                    row.last_used_at, row.last_used_ip = when, ip[:64]

    def close(self) -> None:
        try:
            self.flush_last_use()
        except OperationalError as exc:
            # the store is gone or stuck (disk unmounted, file removed, a lock held past the
            # wait): the held stamps are lost, not the rest of the shutdown
            log.warning("could not write the last use of %d tokens at shutdown: %s",
                        len(self.last_use.snapshot()), exc.orig)
        finally:
            self._cache.close()
