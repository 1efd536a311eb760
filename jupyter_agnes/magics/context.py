"""Per-kernel state shared by the magics: settings and the current backend."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jupyter_agnes.magics.local import LocalBackend
from jupyter_agnes.magics.settings import AgnesMagicSettings
from jupyter_agnes.orchestrator.build import analytics_path

HUB_TOKEN_ENV = "JUPYTERHUB_API_TOKEN"


class AgnesContext:
    """Remote mode once `%agnes connect` succeeded; else, in a per-user server under
    JupyterHub (AGNES_SERVICE_URL and JUPYTERHUB_API_TOKEN set, and no readable local
    analytics.duckdb), the hub's Agnes service with the server's own hub token, so grants
    apply; else local mode. A per-user server cannot read the service's data dir; the
    service's own kernels (dashboards) can, and stay local even if the env leaks in."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.settings = AgnesMagicSettings(parent=shell)
        self.remote: Any = None  # RemoteBackend, imported lazily (httpx)
        self._service: Any = None  # the hub's Agnes service, when configured
        self._service_decided = False  # decided on first use, not re-checked every cell
        self._local: LocalBackend | None = None

    def local(self) -> LocalBackend:
        if self._local is None:
            self._local = LocalBackend(Path(self.settings.data_dir))
        return self._local

    def service(self) -> Any:
        """The hub's Agnes service backend, or None outside a hub's per-user server."""
        if self._service_decided:
            return self._service
        self._service_decided = True
        settings = self.settings
        if (
            settings.service_url
            and settings.hub_api_token
            and not os.access(analytics_path(Path(settings.data_dir)), os.R_OK)
        ):
            from jupyter_agnes.magics.remote import RemoteBackend, normalise_url

            # The spawner sets the URL; a hub's internal URLs are often plain http.
            url = normalise_url(settings.service_url, insecure=True)
            self._service = RemoteBackend(
                url, settings.hub_api_token, HUB_TOKEN_ENV, settings.remote_timeout, hub=True
            )
        return self._service

    def backend(self) -> Any:
        if self.remote is not None:
            return self.remote
        service = self.service()
        return service if service is not None else self.local()

    def set_remote(self, backend: Any) -> None:
        if self.remote is not None:
            self.remote.close()
        self.remote = backend

    def close(self) -> None:
        self.set_remote(None)
        if self._service is not None:
            self._service.close()
        if self._local is not None:
            self._local.close()

    def trace_context(self, magic: str) -> dict[str, Any]:
        """What LLM traces carry: the kernel session, the notebook and the cell."""
        ctx: dict[str, Any] = {"magic": magic}
        session = kernel_session_id(self.shell)
        if session:
            ctx["session_id"] = session
        if self.settings.notebook_path:
            ctx["notebook_path"] = self.settings.notebook_path
        # IPython bumps the counter before running a cell; ipykernel reports count - 1 too.
        count = getattr(self.shell, "execution_count", None)
        if isinstance(count, int) and count > 1:
            ctx["execution_count"] = count - 1
        return ctx


def kernel_session_id(shell: Any) -> str:
    """The kernel id (from `kernel-<id>.json`), else the kernel's messaging session id."""
    try:
        from ipykernel.kernelapp import IPKernelApp

        if IPKernelApp.initialized():
            name = os.path.basename(IPKernelApp.instance().connection_file or "")
            if name.startswith("kernel-") and name.endswith(".json"):
                return name[len("kernel-") : -len(".json")]
    except Exception:  # noqa: S110 - not in ipykernel: fall back to the session id
        pass
    kernel = getattr(shell, "kernel", None)
    return str(getattr(getattr(kernel, "session", None), "session", "") or "")
