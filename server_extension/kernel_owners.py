"""Which Agnes user started each kernel, and the idle-kernel culling default.

Kernels start along several paths (`POST /api/kernels`, `/api/sessions`, a session's
kernel change, a Voila render), and none of them passes the user to the kernel
manager. The identity provider therefore notes each request's principal in a context
variable (tornado runs every request in its own asyncio task, so the value never
leaks into another request), and `KernelOwnership.start_kernel` stamps it on the new
kernel. The owner lives on the kernel's own manager object, so it goes away with the
kernel and survives restarts. Kernels started outside a request have no owner.
`with_kernel_ownership` also mixes in dashboard_kernels.DashboardKernelLimits (the caps
on the kernels Voila starts, which need their owner).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
from traitlets import default

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.envknobs import env_int
from server_extension.dashboard_kernels import DashboardKernelLimits

OWNER_ATTRIBUTE = "agnes_owner_id"
CULL_IDLE_KNOB = "AGNES_KERNEL_CULL_IDLE_S"
CULL_IDLE_DEFAULT_S = 3600

_requesting_user: ContextVar[int | None] = ContextVar("agnes_requesting_user", default=None)


def note_requester(principal: Principal | None) -> None:
    """Remember who the current request is from, for any kernel it starts."""
    _requesting_user.set(principal.user_id if principal is not None else None)


class KernelOwnership:
    """Mixin for a MappingKernelManager: records each kernel's owner; culls idle kernels
    after `AGNES_KERNEL_CULL_IDLE_S` unless `cull_idle_timeout` is configured."""

    @default("cull_idle_timeout")
    def _cull_idle_timeout_default(self) -> int:
        return env_int(CULL_IDLE_KNOB, CULL_IDLE_DEFAULT_S, minimum=0)

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:
        # Asking for an existing kernel id returns that kernel: it keeps its owner.
        existed = kwargs.get("kernel_id") in self  # type: ignore[operator]
        kernel_id: str = await super().start_kernel(*args, **kwargs)  # type: ignore[misc]
        if not existed:
            kernel = self.get_kernel(kernel_id)  # type: ignore[attr-defined]
            setattr(kernel, OWNER_ATTRIBUTE, _requesting_user.get())
        return kernel_id

    def kernel_owner_id(self, kernel_id: str) -> int | None:
        return kernel_owner(self, kernel_id)


def with_kernel_ownership(base: type[MappingKernelManager]) -> type[MappingKernelManager]:
    """`base` with KernelOwnership and the dashboard kernel limits mixed in (idempotent).

    DashboardKernelLimits comes first: its start_kernel runs once the owner is stamped.
    """
    mixins = tuple(m for m in (DashboardKernelLimits, KernelOwnership) if not issubclass(base, m))
    if not mixins:
        return base
    return type(f"Agnes{base.__name__}", (*mixins, base), {"__module__": __name__})


def install_kernel_ownership(serverapp: Any) -> bool:
    """At link time, before the kernel manager exists: mix ownership into its class.

    A `kernel_manager_class` already set (by the operator, or by other code at link time)
    is extended, not replaced. Without one the default is the plain async manager, unless
    a kernel gateway is configured (its default is decided later; reading it here would
    decide it too early): then kernels stay shared, as before, and the server logs why.
    """
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    # Set by config or by code before us (trait_has_value does not build the default).
    if serverapp.trait_has_value("kernel_manager_class"):
        base = serverapp.kernel_manager_class
    elif serverapp.config.get("GatewayClient", {}).get("url") or _gateway_url_in_env():
        serverapp.log.warning("Agnes: a kernel gateway is configured; kernels are not isolated")
        return False
    else:
        base = AsyncMappingKernelManager
    if not issubclass(base, MappingKernelManager):
        serverapp.log.warning("Agnes: %s is not a MappingKernelManager; kernels are shared", base)
        return False
    serverapp.kernel_manager_class = with_kernel_ownership(base)
    return True


def _gateway_url_in_env() -> bool:
    import os

    return bool(os.environ.get("JUPYTER_GATEWAY_URL"))


def tracks_owners(kernel_manager: Any) -> bool:
    return isinstance(kernel_manager, KernelOwnership)


def kernel_owner(kernel_manager: Any, kernel_id: str) -> int | None:
    try:
        kernel = kernel_manager.get_kernel(kernel_id)
    except KeyError:
        return None
    return getattr(kernel, OWNER_ATTRIBUTE, None)


def may_use_kernel_id(kernel_manager: Any, principal: Principal, kernel_id: str) -> bool:
    """Ownership only; whether the principal may use kernels at all is asked elsewhere.

    When this server does not track owners (another kernel manager), kernels are shared.
    An id that names no running kernel passes, so jupyter-server answers its own 404.
    """
    if not tracks_owners(kernel_manager) or kernel_id not in kernel_manager:
        return True
    return rbac.may_use_kernel(principal, kernel_owner(kernel_manager, kernel_id))


def kernel_in_path_allowed(handler: Any, principal: Principal) -> bool:
    """For the authorizer: a route naming a kernel (`/api/kernels/<id>`, its actions and
    websocket) is refused for someone else's kernel, whatever the principal's grants."""
    kernel_id = (getattr(handler, "path_kwargs", None) or {}).get("kernel_id")
    if not kernel_id:
        return True
    return may_use_kernel_id(handler.settings.get("kernel_manager"), principal, kernel_id)
