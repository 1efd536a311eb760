"""What a failed store write means to the person who asked: busy, full, or broken."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

RETRY_AFTER_S = 5


def store_failure_message(exc: BaseException) -> str | None:
    """A safe message for a store error a client can wait out; None for other errors.

    The driver's own text is never shown: it may name files or statements.
    """
    if not isinstance(exc, OperationalError):
        return None
    text = str(exc.orig if exc.orig is not None else exc).lower()
    if "locked" in text or "busy" in text or "lock timeout" in text or "deadlock" in text:
        return "The system store is busy (another process holds its lock); try again shortly"
    if "full" in text or "no space" in text:
        return "The system store cannot be written: the disk is full. Tell your admin"
    if "disk i/o" in text or "readonly" in text or "read-only" in text:
        return "The system store cannot be written right now. Tell your admin"
    return None
