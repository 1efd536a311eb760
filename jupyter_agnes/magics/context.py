"""Per-kernel state shared by the magics: settings and the current backend."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jupyter_agnes.magics.errors import AgnesMagicError
from jupyter_agnes.magics.local import LocalBackend
from jupyter_agnes.magics.settings import AgnesMagicSettings
from jupyter_agnes.orchestrator.build import analytics_path
from jupyter_agnes.urls import is_loopback_host

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
        settings = self.settings
        if (
            settings.service_url
            and settings.hub_api_token
            and not os.access(analytics_path(Path(settings.data_dir)), os.R_OK)
        ):
            from jupyter_agnes.magics.remote import RemoteBackend

            # Raises (every cell, never falling back to local mode) for a URL the token
            # must not go to.
            url = service_url_for_token(settings.service_url, settings.service_insecure)
            self._service = RemoteBackend(
                url, settings.hub_api_token, HUB_TOKEN_ENV, settings.remote_timeout, hub=True
            )
        self._service_decided = True
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


def service_url_for_token(url: str, insecure: bool = False) -> str:
    """AGNES_SERVICE_URL, normalised; an `AgnesMagicError` naming it when it is not a
    server URL, or is plain http to a host other than loopback (unless `insecure`)."""
    from jupyter_agnes.magics.remote import normalise_url

    try:
        url = normalise_url(url, insecure=True)
    except AgnesMagicError as exc:
        raise AgnesMagicError(f"AGNES_SERVICE_URL: {exc}") from None
    host = urlsplit(url).hostname or ""
    if url.startswith("http://") and not is_loopback_host(host) and not insecure:
        raise AgnesMagicError(
            f"AGNES_SERVICE_URL ({url}) is plain http to {host}, not loopback: the hub token "
            "is not sent there; use https (or AGNES_SERVICE_INSECURE=1 on a private network)"
        )
    return url


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
