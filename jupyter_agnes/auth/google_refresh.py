"""The periodic Google re-check: offboarding reaches sessions and PATs within an interval.

Every `interval_s` (AGNES_HUB_REFRESH_S, default 300, the hub's knob too) one server of
those sharing the store (a lease, `store.leases`) asks the Directory about every active
user who holds a live session or an unexpired PAT and either has Google-synced
memberships or signed in with Google, and applies the sign-in policy (`decide`) through
`google_sync.apply_google_refresh`:

- no longer allowed: the Google-synced memberships go and the sessions are revoked; PATs
  keep what the other memberships grant (rights are computed per request);
- unknown to the Directory (its JSON 404 for the userKey): deactivated;
- other groups: the synced memberships follow, as at sign-in.

A Directory that cannot answer changes nothing (one log line per run; a run stops after
a few failures in a row). Calls are paced: spread over half the interval, never faster
than `requests_per_second` (AGNES_GOOGLE_REFRESH_RPS). Users whose Google decision was
applied during the last interval (a sign-in, or JupyterHub's own `refresh_user` through
the service) are not asked again. Blocking: the server runs it on its own thread.
"""

from __future__ import annotations

import logging
import math
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select
from traitlets import Float, TraitError, default, validate
from traitlets.config import LoggingConfigurable

from jupyter_agnes.auth.google_directory import DirectoryUserNotFound
from jupyter_agnes.auth.google_http import GoogleAuthError
from jupyter_agnes.auth.google_oauth import GoogleOAuthSettings, GoogleOIDCClient
from jupyter_agnes.auth.google_policy import Decision, GooglePolicyConfig, decide
from jupyter_agnes.auth.google_sync import (
    GOOGLE_SYNC,
    LOGIN_ACTION,
    RefreshChange,
    apply_google_refresh,
    refresh_leaves_unchanged,
)
from jupyter_agnes.envknobs import env_float, env_str
from jupyter_agnes.store import leases
from jupyter_agnes.store.engine import Store
from jupyter_agnes.store.models import AuditEntry, Membership, PersonalAccessToken, User, utcnow
from jupyter_agnes.store.models import Session as UserSession

LEASE = "google_refresh"
DEFAULT_REFRESH_S = 300.0
DEFAULT_RPS = 20.0  # Google's Directory quota is 2,400 calls a minute: leave room for sign-ins
SPREAD = 0.5  # a run's calls are spread over this share of the interval
BATCH = 50  # users per store transaction (and per lease renewal)
OUTAGE_STREAK = 5  # failures in a row that end a run: the Directory is down, stop asking
JITTER_S = 1.0  # at most: servers waiting for the lease do not all ask at the same instant


def positive_seconds(value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{value} is not a positive number of seconds")
    return value


def refresh_interval_s() -> float:
    """AGNES_HUB_REFRESH_S (default 300): how often Google access is re-checked, here, by
    the hub's reconciler and by the hub's Google refresh (`hub.config`)."""
    raw = env_str("AGNES_HUB_REFRESH_S")
    try:
        return positive_seconds(float(raw)) if raw else DEFAULT_REFRESH_S
    except ValueError:
        raise TraitError(
            f"AGNES_HUB_REFRESH_S={raw!r} is not a positive number of seconds"
        ) from None


@dataclass
class RefreshReport:
    """One run: who was asked, what changed, who could not be asked."""

    checked: int = 0
    changes: list[RefreshChange] = field(default_factory=list)
    unavailable: int = 0  # not re-checked: the Directory could not answer
    skipped_recent: int = 0  # decided during the last interval already
    last_error: str = ""
    seconds: float = 0.0


class _Pacer:
    """Evenly spaced calls at `rate` per second; `wait` is False once stopped."""

    def __init__(self, rate: float, stop: threading.Event) -> None:
        self.gap = 1.0 / rate if rate > 0 else 0.0
        self.stop = stop
        self.next_at = time.monotonic()

    def wait(self) -> bool:
        delay = self.next_at - time.monotonic()
        if delay > 0 and self.stop.wait(delay):
            return False
        self.next_at = max(self.next_at, time.monotonic() - self.gap) + self.gap
        return not self.stop.is_set()


def _chunks(items: Sequence[tuple[int, str]], size: int) -> Iterator[Sequence[tuple[int, str]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class GoogleRefresher(LoggingConfigurable):
    """Re-checks Google access of people holding credentials (see the module doc)."""

    interval_s = Float(
        config=True, help="Seconds between two Google re-checks (AGNES_HUB_REFRESH_S)."
    )
    requests_per_second = Float(
        config=True,
        help="At most this many Directory calls a second (AGNES_GOOGLE_REFRESH_RPS).",
    )

    @default("interval_s")
    def _interval_default(self) -> float:
        return refresh_interval_s()

    @default("requests_per_second")
    def _rps_default(self) -> float:
        # traitlets does not validate defaults: 0 here would mean no pacing at all
        rps = env_float("AGNES_GOOGLE_REFRESH_RPS", DEFAULT_RPS)
        try:
            return positive_seconds(rps)
        except ValueError:
            raise TraitError(f"AGNES_GOOGLE_REFRESH_RPS must be positive, not {rps:g}") from None

    @validate("interval_s", "requests_per_second")
    def _positive(self, proposal: dict[str, Any]) -> float:
        try:
            return positive_seconds(float(proposal["value"]))
        except ValueError:
            raise TraitError(
                f"GoogleRefresher.{proposal['trait'].name} must be positive, "
                f"not {proposal['value']}"
            ) from None

    def __init__(
        self,
        store: Store,
        settings: GoogleOAuthSettings,
        policy: GooglePolicyConfig,
        **kwargs: Any,
    ) -> None:
        if "parent" not in kwargs:  # the CLI, tests: the Google sign-in's logger
            kwargs.setdefault("log", logging.getLogger("jupyter_agnes.auth.google"))
        super().__init__(**kwargs)
        self.interval_s, self.requests_per_second  # noqa: B018 - bad knobs fail at startup
        self.store = store
        self.policy = policy
        # Its own HTTP session and Directory token: sign-ins never wait behind a run.
        self.client = GoogleOIDCClient(settings)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.stopping = threading.Event()

    def stop(self) -> None:
        """Ends a run at its next call (the server stopping)."""
        self.stopping.set()

    # --- who is asked --------------------------------------------------------------

    def users_to_check(self, email: str | None = None) -> list[tuple[int, str]]:
        """(id, email) of the active people holding a live session or an unexpired PAT
        whose access Google vouches for; with `email`, that person only."""
        now = utcnow()
        live_session = and_(
            UserSession.user_id == User.id,
            UserSession.revoked_at.is_(None),
            UserSession.expires_at > now,
        )
        has_session = exists().where(live_session)
        has_google_session = exists().where(live_session, UserSession.auth_method == "google")
        has_pat = exists().where(
            PersonalAccessToken.user_id == User.id,
            PersonalAccessToken.revoked_at.is_(None),
            PersonalAccessToken.expires_at > now,
        )
        has_synced = exists().where(Membership.user_id == User.id, Membership.source == GOOGLE_SYNC)
        query = select(User.id, User.email).where(
            User.active.is_(True),
            User.is_service.is_(False),
            or_(and_(has_synced, or_(has_session, has_pat)), has_google_session),
        )
        if email is not None:
            query = query.where(User.email == email.strip().lower())
        with self.store.read() as s:
            return [(uid, mail) for uid, mail in s.execute(query.order_by(User.id))]

    def recently_decided(self) -> set[int]:
        """Users whose Google decision was applied with Directory data during the last
        interval: a sign-in here, or the hub's `refresh_user` through the service."""
        since = utcnow() - timedelta(seconds=self.interval_s)
        with self.store.read() as s:
            rows = s.execute(
                select(AuditEntry.user_id, AuditEntry.params).where(
                    AuditEntry.ts >= since,
                    AuditEntry.action == LOGIN_ACTION,
                    AuditEntry.result == "ok",
                    AuditEntry.user_id.is_not(None),
                )
            )
            return {
                uid
                for uid, params in rows
                if isinstance(params, dict) and params.get("groups_source") not in (None, "none")
            }

    # --- one run ---------------------------------------------------------------------

    def verdict(self, email: str) -> Decision | None:
        """The policy's decision from the Directory's answer now; None when the Directory
        does not know the user. Raises GoogleAuthError when it cannot answer."""
        try:
            groups = self.client.lookup_groups(email)
        except DirectoryUserNotFound:
            return None
        domain = email.rpartition("@")[2]  # a Workspace account's hosted domain
        return decide(email, True, domain, groups, self.policy, empty_is_answer=True)

    def run(
        self,
        users: Sequence[tuple[int, str]],
        *,
        spread: bool = True,
        progress: Callable[[int, int], None] | None = None,
        keep_lease: bool = False,
    ) -> RefreshReport:
        """Re-check `users`, paced; with `keep_lease`, renew this server's lease as it goes
        and stop if another server took it."""
        report = RefreshReport()
        started = time.monotonic()
        rate = self.requests_per_second
        if spread and users:
            rate = min(rate, len(users) / (SPREAD * self.interval_s))
        pacer = _Pacer(rate, self.stopping)
        streak = 0  # Directory failures in a row
        done = 0  # users asked about, or given up on
        for batch in _chunks(users, BATCH):
            verdicts: list[tuple[int, Decision | None]] = []
            for user_id, email in batch:
                if streak >= OUTAGE_STREAK or not pacer.wait():
                    break
                done += 1
                try:
                    verdicts.append((user_id, self.verdict(email)))
                    streak = 0
                except GoogleAuthError as exc:
                    report.unavailable += 1
                    report.last_error = str(exc)
                    streak += 1
            report.checked += len(verdicts)
            with self.store.read() as s:  # most people are unchanged: no write for them
                unchanged = refresh_leaves_unchanged(s, verdicts)
            verdicts = [(uid, v) for uid, v in verdicts if uid not in unchanged]
            if verdicts:
                with self.store.write() as s:
                    for user_id, verdict in verdicts:
                        change = apply_google_refresh(s, user_id, verdict)
                        if change is not None:
                            report.changes.append(change)
            if progress is not None:
                progress(done, len(users))
            if self.stopping.is_set():  # the server stops: the next run starts over
                break
            if streak >= OUTAGE_STREAK:
                report.unavailable += len(users) - done
                break
            if keep_lease and not leases.extend(self.store, LEASE, self.holder, self.interval_s):
                self.log.warning("Google re-check: another server took over; stopping here")
                break
        report.seconds = time.monotonic() - started
        self._log(report)
        return report

    def _log(self, report: RefreshReport) -> None:
        for change in report.changes:
            self.log.warning("Google re-check: %s", change.describe())
        if report.unavailable:  # once per run, not once per user
            self.log.warning(
                "Google re-check: the Directory could not answer (%s); %d user(s) not "
                "re-checked, unchanged until the next run",
                report.last_error, report.unavailable,
            )
        if report.seconds > self.interval_s:
            self.log.warning(
                "Google re-check took %.0f s, longer than AGNES_HUB_REFRESH_S=%g: raise "
                "AGNES_GOOGLE_REFRESH_RPS (now %g) or the interval",
                report.seconds, self.interval_s, self.requests_per_second,
            )

    def run_if_due(self) -> RefreshReport | None:
        """One run if this server takes the lease (free once per interval); else None."""
        if not leases.try_acquire(self.store, LEASE, self.holder, self.interval_s):
            return None
        recent = self.recently_decided()
        users = self.users_to_check()
        due = [(uid, email) for uid, email in users if uid not in recent]
        report = self.run(due, keep_lease=True)
        report.skipped_recent = len(users) - len(due)
        return report

    def seconds_until_due(self) -> float:
        """When to ask for the lease again: when it expires (at most one interval away, so
        a lease given back early is seen), give or take a second."""
        jitter = min(JITTER_S, 0.05 * self.interval_s)
        left = min(leases.seconds_left(self.store, LEASE), self.interval_s)
        return left + random.uniform(0.01, jitter)  # noqa: S311
