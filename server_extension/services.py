"""`AgnesServices`: everything one Agnes server uses, built once at startup.

`AgnesExtensionApp.initialize_settings` calls `build_services` and leaves the result in
the tornado settings; handlers reach it through `agnes_services(handler)` (or
`AgnesAPIHandler.agnes`). Nothing here is process-wide, so two servers in one process
(tests, embedding) each have their own store, clients, limiter and PostHog client.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tornado import web
from traitlets.config import Configurable

from jupyter_agnes.auth.google_oauth import GoogleOAuthSettings, GoogleOIDCClient
from jupyter_agnes.auth.google_policy import GooglePolicyConfig
from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.auth.ratelimit import RateLimiter
from jupyter_agnes.auth.service import AuthService
from jupyter_agnes.catalog import Catalog
from jupyter_agnes.connectors.source_runs import SourceSync
from jupyter_agnes.llm import LLMSettings
from jupyter_agnes.llm.ask_service import AskService
from jupyter_agnes.observability import Observability, ObservabilitySettings
from jupyter_agnes.orchestrator import SyncOrchestrator
from jupyter_agnes.orchestrator.jobs import SyncJobs
from jupyter_agnes.query import QueryRunner, QuerySlots
from jupyter_agnes.store.engine import Store
from server_extension.socket_revocation import OpenSockets

SETTINGS_KEY = "agnes_services"
STATE_MAX_AGE_S = 600
_USED_STATES_MAX = 10_000

log = logging.getLogger("jupyter_agnes.server")
T = TypeVar("T")


class GoogleLoginService:
    """Google sign-in objects, configured through the agnes app's config."""

    def __init__(self, parent: Configurable, limiter: RateLimiter) -> None:
        self.settings = GoogleOAuthSettings(parent=parent)
        self.client = GoogleOIDCClient(self.settings)
        self.policy = GooglePolicyConfig(parent=parent)
        self.limiter = limiter  # the server's buckets: one budget per client and route
        self._used: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return self.settings.configured

    def consume_state(self, state: str) -> bool:
        """True the first time a state is presented; a replay gets False."""
        now = time.monotonic()
        with self._lock:
            while self._used and next(iter(self._used.values())) < now - STATE_MAX_AGE_S:
                self._used.popitem(last=False)
            if state in self._used:
                return False
            self._used[state] = now
            while len(self._used) > _USED_STATES_MAX:
                self._used.popitem(last=False)
            return True


# Worker threads for the data handlers. One user holds at most
# AGNES_QUERY_MAX_CONCURRENT_PER_USER of them at once (QuerySlots), so this many let
# 16 users at their default cap run without anyone queueing behind another's queries.
# A thread mostly waits in DuckDB, which holds no GIL there, and each query's DuckDB
# threads are capped by QueryRunner.threads, so the CPU is shared, not oversubscribed.
DATA_POOL_THREADS = 32


class DataServices:
    """The catalog, the query runner and the per-user query slots, the orchestrator and
    its jobs, and the thread pool the data handlers run blocking work on."""

    def __init__(
        self, data_dir: Path, store: Store, observability: Observability, parent: Configurable
    ) -> None:
        self.data_dir = Path(data_dir)
        self.catalog = Catalog(self.data_dir)
        self.runner = QueryRunner(self.data_dir, catalog=self.catalog, store=store, parent=parent)
        self.orchestrator = SyncOrchestrator(
            self.data_dir, store=store, observability=observability, parent=parent
        )
        self.sources = SourceSync(store, self.orchestrator)
        self.jobs = SyncJobs(self.orchestrator, store, work=self.sources.run)
        self.slots = QuerySlots(parent=parent)
        self.pool = ThreadPoolExecutor(DATA_POOL_THREADS, thread_name_prefix="agnes-query")
        if self.runner.max_memory > 0:
            self.runner.workers()  # a query worker starts now, in the background
        self._clean_after_crash()

    def _clean_after_crash(self) -> None:
        """What a killed server or CLI left: temp files, and jobs still saying `running`."""
        self.orchestrator.remove_leftovers()
        try:
            self.jobs.mark_interrupted()
        except Exception:  # a busy store must not stop the server from starting
            log.warning("could not mark interrupted sync jobs", exc_info=True)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class AgnesServices:
    """One server's wiring. `store` and `auth` are what most handlers need."""

    data_dir: Path
    store: Store
    auth: AuthService
    ratelimiter: RateLimiter
    google: GoogleLoginService
    data: DataServices
    observability: Observability
    ask: AskService  # the server's LLM for `POST /agnes/api/ask`; its key stays here
    sockets: OpenSockets  # open kernel and terminal websockets, closed on revocation
    # Store work of requests runs on these, never on the event loop: credentials (reads,
    # which a held write lock does not block) apart from writes (which may wait for it).
    auth_pool: ThreadPoolExecutor
    store_pool: ThreadPoolExecutor

    async def in_auth_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.auth_pool, fn, *args)

    async def in_store_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.store_pool, fn, *args)

    def principal_for_foreign_user(self, user: Any) -> Principal | None:
        """A user signed in by another identity provider (JupyterHub): match by email."""
        return self.principal_for_email(getattr(user, "username", "") or "", "hub")

    def principal_for_email(self, email: str, auth: str) -> Principal | None:
        """The active Agnes user with this email, signed in by `auth`; None if there is none."""
        return self.auth.principal_for_email(email, auth)

    def close(self) -> None:
        self.auth_pool.shutdown(wait=False, cancel_futures=True)
        self.store_pool.shutdown(wait=True, cancel_futures=True)
        self.observability.shutdown()
        self.ask.close()
        self.sockets.close()
        self.data.close()
        self.auth.close()
        self.store.close()


def build_services(app: Configurable, data_dir: Path, store: Store) -> AgnesServices:
    """Every service of one server, configured through `app` (the extension app)."""
    auth = AuthService(store, parent=app)
    limiter = RateLimiter(parent=app)
    observability = Observability(ObservabilitySettings(parent=app))
    data = DataServices(data_dir, store, observability, app)
    return AgnesServices(
        data_dir=data_dir,
        store=store,
        auth=auth,
        ratelimiter=limiter,
        google=GoogleLoginService(app, limiter),
        data=data,
        observability=observability,
        ask=AskService(LLMSettings(parent=app), data.catalog, observability),
        sockets=OpenSockets(auth, parent=app),
        auth_pool=ThreadPoolExecutor(4, thread_name_prefix="agnes-auth"),
        store_pool=ThreadPoolExecutor(4, thread_name_prefix="agnes-store"),
    )


def agnes_services(handler: web.RequestHandler) -> AgnesServices:
    """The services of the server `handler` belongs to."""
    services = handler.settings.get(SETTINGS_KEY)
    if not isinstance(services, AgnesServices):
        raise RuntimeError("the agnes extension is not initialised on this server")
    return services
