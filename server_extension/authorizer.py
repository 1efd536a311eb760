"""`AgnesAuthorizer`: maps jupyter-server resources onto Agnes grants (rules in core rbac)."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.authorizer import Authorizer

from jupyter_agnes.auth import rbac
from server_extension.kernel_owners import kernel_in_path_allowed
from server_extension.request_helpers import principal_of
from server_extension.voila_access import kernel_request_allowed


class AgnesAuthorizer(Authorizer):
    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        principal = getattr(user, "principal", None) or principal_of(handler)
        if principal is None:
            return False
        if not kernel_in_path_allowed(handler, principal):  # someone else's kernel
            return False
        if rbac.may_use_server_resource(principal, resource):
            return True
        # A viewer's one way to a kernel: the one Voila started for their dashboard.
        return resource == "kernels" and kernel_request_allowed(handler, principal)
