"""Dashboard (Voila) kernels: a few per user, and none left running with nobody watching.

Voila, as a server extension, starts a kernel through the server's kernel manager for
every page render (it never pre-heats there) and marks its launch env with
`VOILA_PREHEAT`. Only the page's `beforeunload` beacon shuts it down, so a reload, a
script fetching the page or a crashed tab leaves a ~190 MB kernel behind for good.
`DashboardKernelLimits`, mixed into the kernel manager with `KernelOwnership`
(kernel_owners.with_kernel_ownership), bounds them:

- each user holds at most `AGNES_VOILA_MAX_KERNELS_PER_USER` (default 3) live dashboard
  kernels: a render past the cap shuts down that user's oldest ones;
- a dashboard kernel with no open connection for `AGNES_VOILA_CULL_IDLE_S` (default 600;
  0 turns this off) is shut down. An open connection is the render's own response while
  it streams, or a kernel websocket (the page's widgets).

A bad value of either knob stops the server at startup (`check_dashboard_limits`):
guessing a resource limit the operator mistyped is worse than saying so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jupyter_core.utils import ensure_async
from tornado.ioloop import PeriodicCallback
from traitlets import Int, TraitError, default
from traitlets.config import LoggingConfigurable

from jupyter_agnes.envknobs import env_whole_number

MAX_PER_USER_KNOB = "AGNES_VOILA_MAX_KERNELS_PER_USER"
MAX_PER_USER_DEFAULT = 3
CULL_IDLE_KNOB = "AGNES_VOILA_CULL_IDLE_S"
CULL_IDLE_DEFAULT_S = 600
# Voila's mark on the env of a kernel it starts for a render (voila_access reads it too).
VOILA_LAUNCH_MARK = "VOILA_PREHEAT"
STATE_ATTRIBUTE = "agnes_dashboard"


def launch_env(kernel: Any) -> dict[str, Any] | None:
    """The env a kernel was launched with (jupyter_client keeps the launch arguments)."""
    launch = getattr(kernel, "_launch_args", None)
    env = launch.get("env") if isinstance(launch, dict) else None
    return env if isinstance(env, dict) else None


def is_voila_launch(kernel: Any) -> bool:
    env = launch_env(kernel)
    return env is not None and VOILA_LAUNCH_MARK in env


def cull_check_interval_s(idle_s: int) -> float:
    """How often idle dashboard kernels are looked for: a kernel goes at most this late."""
    return max(1.0, min(30.0, idle_s / 4))


@dataclass
class DashboardKernel:
    """What is known of one dashboard kernel, kept on its kernel manager object."""

    started: float  # time.monotonic()
    render: asyncio.Task[Any] | None  # the render request's task, while its response streams
    quiet_since: float  # the last moment a connection was known to be open

    def rendering(self) -> bool:
        return self.render is not None and not self.render.done()


def _whole_number_default(name: str, default_value: int, minimum: int) -> int:
    try:
        return env_whole_number(name, default_value, minimum)
    except ValueError as exc:
        raise TraitError(str(exc)) from None


class DashboardKernelLimits(LoggingConfigurable):
    """Mixin for a MappingKernelManager that also has `KernelOwnership` (which supplies
    `kernel_owner_id`): caps and culls the kernels Voila starts for page renders."""

    dashboard_kernels_per_user = Int(
        min=1,
        help="Live dashboard (Voila) kernels one user may hold; a render past it shuts "
        f"down their oldest ({MAX_PER_USER_KNOB}, default {MAX_PER_USER_DEFAULT}).",
    ).tag(config=True)
    dashboard_cull_idle_timeout = Int(
        min=0,
        help="Seconds a dashboard kernel may go without an open connection before it is "
        f"shut down; 0: never ({CULL_IDLE_KNOB}, default {CULL_IDLE_DEFAULT_S}).",
    ).tag(config=True)

    kernel_owner_id: Callable[[str], int | None]  # from KernelOwnership
    _dashboard_culler: PeriodicCallback | None = None

    @default("dashboard_kernels_per_user")
    def _dashboard_kernels_per_user_default(self) -> int:
        return _whole_number_default(MAX_PER_USER_KNOB, MAX_PER_USER_DEFAULT, minimum=1)

    @default("dashboard_cull_idle_timeout")
    def _dashboard_cull_idle_timeout_default(self) -> int:
        return _whole_number_default(CULL_IDLE_KNOB, CULL_IDLE_DEFAULT_S, minimum=0)

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:
        kernel_id: str = await super().start_kernel(*args, **kwargs)  # type: ignore[misc]
        kernel = self.get_kernel(kernel_id)  # type: ignore[attr-defined]
        # Asking for an existing kernel id returns that kernel: already tracked, or not Voila's.
        if getattr(kernel, STATE_ATTRIBUTE, None) is None and is_voila_launch(kernel):
            now = time.monotonic()
            # Voila awaits the start inside the render request's task; the render ends with it.
            render = asyncio.current_task()
            state = DashboardKernel(started=now, render=render, quiet_since=now)
            if render is not None:
                render.add_done_callback(lambda _task: _note_quiet(state))
            setattr(kernel, STATE_ATTRIBUTE, state)
            await self._shut_down_over_cap(self.kernel_owner_id(kernel_id))
            self._start_dashboard_culler()
        return kernel_id

    def notify_disconnect(self, kernel_id: str) -> None:
        super().notify_disconnect(kernel_id)  # type: ignore[misc]
        state = self._dashboard_state(kernel_id)
        if state is not None:
            _note_quiet(state)

    def dashboard_kernels(self) -> dict[str, DashboardKernel]:
        """The live dashboard kernels, by id."""
        found = {}
        for kernel_id in self.list_kernel_ids():  # type: ignore[attr-defined]
            state = self._dashboard_state(kernel_id)
            if state is not None:
                found[kernel_id] = state
        return found

    def dashboard_idle_s(self, kernel_id: str, state: DashboardKernel, now: float) -> float:
        """Seconds without an open connection (0 while one is open)."""
        connections = self._kernel_connections.get(kernel_id, 0)  # type: ignore[attr-defined]
        if connections > 0 or state.rendering():
            return 0.0
        return now - state.quiet_since

    def _dashboard_state(self, kernel_id: str) -> DashboardKernel | None:
        # A socket can close after its kernel is gone (a shutdown, the server's cleanup):
        # jupyter-server's `get_kernel` then raises a 404, not a KeyError.
        if kernel_id not in self:  # type: ignore[operator]
            return None
        kernel = self.get_kernel(kernel_id)  # type: ignore[attr-defined]
        return getattr(kernel, STATE_ATTRIBUTE, None)

    async def _shut_down_over_cap(self, owner: int | None) -> None:
        if owner is None:  # started outside a request: no one to count it against
            return
        mine = sorted(
            (state.started, kernel_id)
            for kernel_id, state in self.dashboard_kernels().items()
            if self.kernel_owner_id(kernel_id) == owner
        )
        for _, kernel_id in mine[: -self.dashboard_kernels_per_user]:
            self.log.info(
                "Agnes: shutting down dashboard kernel %s of user %s (over %s per user)",
                kernel_id, owner, self.dashboard_kernels_per_user,
            )
            await self._shut_down_dashboard_kernel(kernel_id)

    def _start_dashboard_culler(self) -> None:
        idle_s = self.dashboard_cull_idle_timeout
        if idle_s <= 0 or self._dashboard_culler is not None:
            return
        interval_ms = 1000 * cull_check_interval_s(idle_s)
        self._dashboard_culler = PeriodicCallback(self.cull_idle_dashboard_kernels, interval_ms)
        self._dashboard_culler.start()

    async def cull_idle_dashboard_kernels(self) -> None:
        """Shut down dashboard kernels without a connection for the timeout; with none
        left, stop looking until Voila starts another."""
        kernels = self.dashboard_kernels()
        if not kernels and self._dashboard_culler is not None:
            self._dashboard_culler.stop()
            self._dashboard_culler = None
            return
        now = time.monotonic()
        for kernel_id, state in kernels.items():
            idle_s = self.dashboard_idle_s(kernel_id, state, now)
            if idle_s >= self.dashboard_cull_idle_timeout:
                self.log.info(
                    "Agnes: shutting down dashboard kernel %s: no connection for %d s",
                    kernel_id, idle_s,
                )
                await self._shut_down_dashboard_kernel(kernel_id)

    async def _shut_down_dashboard_kernel(self, kernel_id: str) -> None:
        try:
            await ensure_async(self.shutdown_kernel(kernel_id))  # type: ignore[attr-defined]
        except Exception as exc:  # already gone (the page's own shutdown, a race): fine
            self.log.debug("Agnes: dashboard kernel %s was not shut down: %s", kernel_id, exc)


def _note_quiet(state: DashboardKernel) -> None:
    # A connection (the render's response or a websocket) just closed; others may remain,
    # which dashboard_idle_s checks at the time it asks.
    state.quiet_since = time.monotonic()


def check_dashboard_limits(kernel_manager: Any) -> str | None:
    """At startup: read both knobs, so a bad value stops the server (TraitError) rather
    than failing a viewer's page. A one-line summary, or None without the mixin."""
    if not isinstance(kernel_manager, DashboardKernelLimits):
        return None
    cap = kernel_manager.dashboard_kernels_per_user
    idle_s = kernel_manager.dashboard_cull_idle_timeout
    culling = f"shut down after {idle_s} s without a connection" if idle_s else "never culled"
    return f"dashboard kernels: at most {cap} per user, {culling}"
