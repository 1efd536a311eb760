"""What a person is told when sign-in fails, by refusal code: one wording for every door
(the server's login page, the JupyterHub authenticator's error page)."""

from __future__ import annotations

__all__ = ["LOGIN_ERRORS", "login_error_message"]

LOGIN_ERRORS = {
    "no_email": "Your Google account did not share an email address.",
    "email_unusable": "Your Google email address cannot be used to sign in here.",
    "email_unverified": "Your Google email address is not verified.",
    "domain_not_allowed": "Your email domain is not allowed to sign in here.",
    "not_in_allowed_group": "You are not a member of a Google group that may use Agnes.",
    "directory_unavailable": (
        "Your Google groups could not be checked right now, and they decide who may use "
        "Agnes. Please try again in a few minutes."
    ),
    "state_mismatch": "The sign-in attempt expired or was tampered with. Please try again.",
    "oauth_failed": "Google sign-in failed. Please try again.",
    "deactivated": "Your Agnes account has been deactivated. Ask an admin.",
    # Shown by the sign-in page's own "not configured" paragraph, never a second time.
    "google_not_configured": "Google sign-in is not configured on this server.",
    "link_invalid": "That login link is invalid, expired or already used.",
    "rate_limited": "Too many sign-in attempts. Wait a minute and try again.",
}

GENERIC_LOGIN_ERROR = "Sign-in failed. Please try again."


def login_error_message(code: str | None) -> str:
    """The sentence for `code`; unknown codes get a generic one (never the code's text)."""
    return LOGIN_ERRORS.get(code or "", GENERIC_LOGIN_ERROR)
