"""JupyterHub's own error page with Agnes's message, for the hub handlers Agnes adds."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class ErrorPages:
    """For JupyterHub handlers (`render_template`, tornado's `set_status` and `finish`)."""

    async def error_page(self: Any, status: int, message: str) -> None:
        """JupyterHub's error.html with the namespace its `write_error` gives it."""
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        html = await self.render_template(
            "error.html",
            status_code=status,
            status_message=HTTPStatus(status).phrase,
            message=message,
            message_html="",
            extra_error_html="",
            exception=None,
        )
        self.finish(html)
