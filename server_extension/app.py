"""The `agnes` ExtensionApp: installs the identity provider, builds `AgnesServices`
(services.py) once at startup, adds routes."""

from __future__ import annotations

import asyncio
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider
from jupyter_server.extension.application import ExtensionApp
from traitlets import TraitError, Unicode, default

from jupyter_agnes._version import __version__
from jupyter_agnes.auth.google_refresh import GoogleRefresher
from jupyter_agnes.auth.sessions import SecretError
from jupyter_agnes.connectors.scheduler import SourceScheduler
from jupyter_agnes.paths import default_data_dir, resolve_data_dir, write_runtime_info
from jupyter_agnes.store.engine import REQUEST_WAIT_S, StoreError, open_store
from jupyter_agnes.urls import is_loopback_host
from server_extension.authorizer import AgnesAuthorizer
from server_extension.dashboard_kernels import check_dashboard_limits
from server_extension.html_snippet import install_posthog
from server_extension.identity import AgnesIdentityProvider
from server_extension.kernel_guard import AgnesKernelWebsocketConnection
from server_extension.kernel_owners import install_kernel_ownership
from server_extension.lab_menu import install_lab_menu
from server_extension.lab_workspaces import keep_workspaces_in, workspace_list_handlers
from server_extension.services import SETTINGS_KEY, AgnesServices, build_services
from server_extension.voila_header import install_voila_header

# How long a Python thread keeps the GIL while another waits (CPython's default: 5 ms).
# Query results are converted to JSON and CSV in worker threads; with the default, a
# user's small query waits on another user's conversions for tens or hundreds of ms
# at every step (benchmarks/query_fairness.py). A smaller value only makes those
# conversions hand over more often.
GIL_SWITCH_INTERVAL_S = 0.0005


class AgnesExtensionApp(ExtensionApp):
    name = "agnes"
    description = "Agnes: Google sign-in, PATs, RBAC and data for Jupyter."
    load_other_extensions = True

    data_dir = Unicode(config=True, help="Agnes data dir (AGNES_DATA_DIR).")
    public_url = Unicode(
        "",
        config=True,
        help="The URL `jupyter agnes login-link` prints links under (server.json); "
        "default: this server's own. The hub's Agnes service sets the hub's /hub/ URL.",
    )

    @default("data_dir")
    def _data_dir_default(self) -> str:
        return str(default_data_dir())

    services: AgnesServices | None = None
    hub_reconciler: Any = None  # the hub's service only: jupyter_agnes.hub.reconcile
    _reconcile_task: asyncio.Task[None] | None = None
    google_refresher: GoogleRefresher | None = None  # with Google sign-in configured
    _google_refresh_task: asyncio.Task[None] | None = None
    source_scheduler: SourceScheduler | None = None
    _scheduler_task: asyncio.Task[None] | None = None

    # --- link time: before the server builds its identity provider ---------------

    def _link_jupyter_server_extension(self, serverapp: Any) -> None:
        super()._link_jupyter_server_extension(serverapp)
        # Respect an operator's (or JupyterHub's) choice; only replace the defaults. A
        # subclass of ours (the hub's Agnes service) gets the rest of the Agnes wiring.
        provider = serverapp.identity_provider_class
        ours = issubclass(provider, AgnesIdentityProvider)
        if ours or provider in (IdentityProvider, PasswordIdentityProvider):
            if not ours:
                serverapp.identity_provider_class = AgnesIdentityProvider
            install_kernel_ownership(serverapp)  # per-user kernels, idle culling
            if serverapp.authorizer_class.__name__ == "AllowAllAuthorizer":
                serverapp.authorizer_class = AgnesAuthorizer
            # Voila lets a dashboard's viewer talk to its kernel; only widget traffic may pass.
            # (Reading the trait here would build its default before gateway config exists.)
            if "kernel_websocket_connection_class" not in serverapp.config.get("ServerApp", {}):
                serverapp.kernel_websocket_connection_class = AgnesKernelWebsocketConnection

    # --- initialize -----------------------------------------------------------------

    def initialize_settings(self) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
        data_dir = resolve_data_dir(self.data_dir)
        try:
            limits = check_dashboard_limits(self.serverapp.kernel_manager)
            if limits:
                self.log.info("Agnes: %s", limits)
            store = open_store(data_dir)
            store.default_wait_s = REQUEST_WAIT_S  # a request waits briefly, then gets 503
            try:
                services = build_services(self, data_dir, store)
                keep_workspaces_in(self.serverapp, data_dir)  # user ids are per data dir
            except BaseException:
                store.close()
                raise
            self.hub_reconciler = self._make_hub_reconciler(services)
            self.source_scheduler = SourceScheduler(store, services.data.jobs.start, parent=self)
            if services.google.configured:
                google = services.google
                self.google_refresher = GoogleRefresher(
                    store, google.settings, google.policy, parent=self
                )
        except (StoreError, SecretError, OSError, TraitError) as exc:
            # jupyter-server would log a failed extension and serve 500s behind our identity
            # provider; refusing to start is the only safe answer.
            self.log.critical("Agnes cannot start: %s", exc)
            raise SystemExit(f"Agnes cannot start: {exc}") from None
        self.services = services
        self.settings[SETTINGS_KEY] = services
        if services.auth.local_dev_mode:
            ip = self.serverapp.ip
            if not is_loopback_host(ip):
                raise SystemExit(
                    f"LOCAL_DEV_MODE=1 signs everyone in as an admin; refusing to bind to {ip!r}. "
                    "Use --ip=127.0.0.1."
                )
            self.log.warning(
                "LOCAL_DEV_MODE=1: every request is signed in as %s (an admin). "
                "Never use this on a shared machine.",
                services.auth.local_dev_user_email,
            )
        observability = services.observability.settings
        install_posthog(self.serverapp.web_app, observability, self.serverapp.base_url)
        install_voila_header(self.serverapp.web_app, self.serverapp.base_url)
        self._set_kernel_env({"AGNES_DATA_DIR": str(data_dir), **observability.as_env()})
        self.settings["agnes_version"] = __version__
        self._write_runtime_file(data_dir)

    def _make_hub_reconciler(self, services: AgnesServices) -> Any:
        """As the hub's Agnes service (its identity provider says so), the reconciler that
        stops removed users' servers; None on a single server."""
        provider = self.serverapp.identity_provider_class
        if provider is AgnesIdentityProvider or not issubclass(provider, AgnesIdentityProvider):
            return None  # a single server: no hub to ask (nor jupyterhub to import)
        from server_extension.hub_identity import AgnesHubIdentityProvider

        if not issubclass(provider, AgnesHubIdentityProvider):
            return None
        from jupyter_agnes.hub.reconcile import HubReconciler

        return HubReconciler.from_hub_env(services.auth, os.environ, parent=self)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        if self.hub_reconciler is not None:
            self._reconcile_task = asyncio.create_task(self.hub_reconciler.run_forever())
        if self.google_refresher is not None:
            self._google_refresh_task = asyncio.create_task(
                self._refresh_google_access(self.google_refresher)
            )
        if self.source_scheduler is not None and self.source_scheduler.enabled:
            self._scheduler_task = asyncio.create_task(self._run_schedules(self.source_scheduler))

    async def _run_schedules(self, scheduler: SourceScheduler) -> None:
        """Scheduled sources, on a thread of their own (never the loop's): each due run
        is claimed in the store, so servers sharing it run it once."""
        self.log.info("Agnes looks for due sources every %g s", scheduler.poll_interval_s)
        loop = asyncio.get_running_loop()
        thread = ThreadPoolExecutor(1, thread_name_prefix="agnes-scheduler")
        try:
            while True:
                try:
                    await loop.run_in_executor(thread, scheduler.run_due)
                except Exception as exc:  # the store busy or gone: look again next poll
                    self.log.error("Agnes could not look for due sources: %s", exc)
                await asyncio.sleep(scheduler.poll_interval_s)
        finally:
            thread.shutdown(wait=False, cancel_futures=True)

    async def _refresh_google_access(self, refresher: GoogleRefresher) -> None:
        """The Google re-check, on its own thread (never the loop's, never the request
        pool's): a run whenever this server takes the store's lease, once per interval."""
        self.log.info(
            "Agnes re-checks Google access every %g s (at most %g Directory calls/s)",
            refresher.interval_s,
            refresher.requests_per_second,
        )
        loop = asyncio.get_running_loop()
        thread = ThreadPoolExecutor(1, thread_name_prefix="agnes-google-refresh")
        try:
            while True:
                try:
                    await loop.run_in_executor(thread, refresher.run_if_due)
                    wait = await loop.run_in_executor(thread, refresher.seconds_until_due)
                except Exception as exc:  # the store busy or gone: try again next interval
                    self.log.error("Agnes could not re-check Google access: %s", exc)
                    wait = refresher.interval_s
                await asyncio.sleep(wait)
        finally:
            refresher.stop()
            thread.shutdown(wait=False, cancel_futures=True)

    def _set_kernel_env(self, extra: dict[str, str]) -> None:
        """Every kernel this server starts (Lab, Voila) gets `extra` in its env: the data dir
        and the effective PostHog settings.

        Passed per kernel rather than set in os.environ, so several servers in one
        process (tests, embedding) never hand a kernel another server's settings.
        """
        manager = self.serverapp.kernel_manager
        start_kernel = manager.start_kernel

        async def start_kernel_with_agnes_env(*args: Any, **kwargs: Any) -> Any:
            kwargs["env"] = {**(kwargs.get("env") or os.environ), **extra}
            return await start_kernel(*args, **kwargs)

        manager.start_kernel = start_kernel_with_agnes_env

    def _write_runtime_file(self, data_dir: Path) -> None:
        # Lets `jupyter agnes login-link` print a URL for the running server, and `grant`
        # and `dashboards list` find its dashboards folder.
        info = {
            "url": self.public_url or self.serverapp.connection_url,
            "pid": os.getpid(),
            "root_dir": str(Path(self.serverapp.root_dir).resolve()),
        }
        write_runtime_info(data_dir, info)

    def initialize_handlers(self) -> None:
        from server_extension.handlers import agnes_handlers
        from server_extension.lab_isolation import isolation_handlers
        from server_extension.terminal_socket import terminal_socket_handlers

        self.handlers.extend(agnes_handlers())
        self.handlers.extend(isolation_handlers())  # before the server's own /api/kernels…
        self.handlers.extend(workspace_list_handlers())  # before JupyterLab's own list
        # before jupyter-server-terminals' own: revocation reaches open terminals
        self.handlers.extend(terminal_socket_handlers(self.serverapp))
        # Once the loop runs, every extension's routes exist, JupyterLab's settings among
        # them (the server's own start hook, `_post_start`, is not run by every embedder).
        serverapp = self.serverapp
        serverapp.io_loop.add_callback(install_lab_menu, serverapp.web_app, serverapp.base_url)

    async def stop_extension(self) -> None:
        if self._reconcile_task is not None:
            self._reconcile_task.cancel()
        if self.google_refresher is not None:
            self.google_refresher.stop()  # a run under way ends at its next call
        if self._google_refresh_task is not None:
            self._google_refresh_task.cancel()
        if self._scheduler_task is not None:
            self._scheduler_task.cancel()
        if self.services is not None:
            self.services.close()
