"""PostHog settings, and building and closing one SDK client.

PostHog is opt-in. Without an API key nothing is built: the `posthog` package is not
even imported, so no thread starts and no socket opens. With a key, events go to a
bounded in-memory queue drained by the SDK's background consumer, so a PostHog host
that is down, slow or black-holed never slows a request or a cell.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlsplit

from traitlets import Bool, Enum, Float, Int, Unicode, default, validate
from traitlets.config import Configurable

from jupyter_agnes.envknobs import env_bool, env_int, env_str, local_dev_mode
from jupyter_agnes.observability.people import IDENTIFY_MODES

log = logging.getLogger("jupyter_agnes.observability")

DEFAULT_HOST = "https://eu.i.posthog.com"


class ObservabilitySettings(Configurable):
    """PostHog knobs. Each traitlet's default comes from its documented env var."""

    api_key = Unicode(config=True, help="PostHog project key, phc_… (POSTHOG_API_KEY).")
    host = Unicode(config=True, help="PostHog ingestion host (POSTHOG_HOST).")
    identify_pii = Enum(
        IDENTIFY_MODES,
        default_value="email",
        config=True,
        help="User facts sent: none, id, email or full (POSTHOG_IDENTIFY_PII).",
    )
    replay = Bool(config=True, help="Browser session replay, masked (POSTHOG_REPLAY).")
    replay_mask_selector = Unicode(
        config=True, help="Extra CSS selectors to mask in replay (POSTHOG_REPLAY_MASK_SELECTOR)."
    )
    llm_payloads = Bool(
        config=True, help="Send LLM prompts and outputs in traces (POSTHOG_LLM_PAYLOADS)."
    )
    llm_payload_max_chars = Int(
        config=True, help="Cap on each LLM payload sent (POSTHOG_LLM_PAYLOAD_MAX_CHARS)."
    )
    environment = Unicode(
        config=True,
        help="`environment` super-property: POSTHOG_ENVIRONMENT, else `local` under "
        "LOCAL_DEV_MODE, else RELEASE_CHANNEL, else AGNES_DEPLOYMENT_ENV, else `unknown`.",
    )
    release = Unicode(
        config=True, help="`release` super-property: AGNES_VERSION, else RELEASE_CHANNEL."
    )
    debug_routes = Bool(
        config=True, help="Enable /agnes/api/debug/throw for testing error capture (AGNES_DEBUG)."
    )
    # Not env-driven: operational bounds with safe defaults.
    max_queue_size = Int(10000, config=True, help="Events buffered before new ones are dropped.")
    send_timeout = Float(10.0, config=True, help="Seconds per upload request to PostHog.")
    flags_timeout = Float(2.0, config=True, help="Seconds before a feature flag uses its default.")

    @default("api_key")
    def _api_key_default(self) -> str:
        return env_str("POSTHOG_API_KEY")

    @default("host")
    def _host_default(self) -> str:
        # Dynamic defaults skip @validate, so clean the env value here too.
        return _clean_host(env_str("POSTHOG_HOST") or DEFAULT_HOST)

    @default("identify_pii")
    def _identify_default(self) -> str:
        raw = env_str("POSTHOG_IDENTIFY_PII", "email").lower() or "email"
        if raw not in IDENTIFY_MODES:
            log.warning(
                "POSTHOG_IDENTIFY_PII=%r is not one of %s; using email", raw, IDENTIFY_MODES
            )
            return "email"
        return raw

    @default("replay")
    def _replay_default(self) -> bool:
        return env_bool("POSTHOG_REPLAY", True)

    @default("replay_mask_selector")
    def _mask_default(self) -> str:
        return env_str("POSTHOG_REPLAY_MASK_SELECTOR")

    @default("llm_payloads")
    def _payloads_default(self) -> bool:
        return env_bool("POSTHOG_LLM_PAYLOADS", False)

    @default("llm_payload_max_chars")
    def _max_chars_default(self) -> int:
        return env_int("POSTHOG_LLM_PAYLOAD_MAX_CHARS", 30000, minimum=0)

    @default("debug_routes")
    def _debug_default(self) -> bool:
        return env_bool("AGNES_DEBUG", False)

    @default("environment")
    def _environment_default(self) -> str:
        explicit = env_str("POSTHOG_ENVIRONMENT")
        if explicit:
            return explicit
        if local_dev_mode():
            return "local"
        return self._release_channel() or env_str("AGNES_DEPLOYMENT_ENV") or "unknown"

    @default("release")
    def _release_default(self) -> str:
        return env_str("AGNES_VERSION") or self._release_channel()

    @staticmethod
    def _release_channel() -> str:
        return env_str("RELEASE_CHANNEL")

    @validate("host")
    def _valid_host(self, proposal: Any) -> str:
        return _clean_host(str(proposal["value"]))

    @property
    def enabled(self) -> bool:
        return bool(self.api_key.strip())

    def super_properties(self) -> dict[str, str]:
        return {"environment": self.environment or "unknown", "release": self.release}

    def as_env(self) -> dict[str, str]:
        """These effective settings as env vars, for kernels the server starts: a key or
        payload switch set in server config must hold for `%%ask` traces too."""
        return {
            "POSTHOG_API_KEY": self.api_key,
            "POSTHOG_HOST": self.host,
            "POSTHOG_IDENTIFY_PII": self.identify_pii,
            "POSTHOG_LLM_PAYLOADS": "1" if self.llm_payloads else "0",
            "POSTHOG_LLM_PAYLOAD_MAX_CHARS": str(self.llm_payload_max_chars),
            "POSTHOG_ENVIRONMENT": self.environment,
            "AGNES_VERSION": self.release,
        }


def _clean_host(value: str) -> str:
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        log.warning("POSTHOG_HOST is not an http(s) URL; using %s", DEFAULT_HOST)
        return DEFAULT_HOST
    return value


# --- building and closing an SDK client (the state lives in observer.Observability) ---


def build_posthog(settings: ObservabilitySettings) -> Any:
    import posthog  # imported only when enabled: it is heavy and spawns threads

    key = settings.api_key.strip()
    if not key.startswith("phc_"):
        # Never log the key itself; a personal or secret key here would be a leak risk.
        log.warning("POSTHOG_API_KEY does not look like a project key (phc_…); using it anyway")
    return posthog.Posthog(
        key,
        host=settings.host,
        max_queue_size=settings.max_queue_size,
        timeout=settings.send_timeout,
        max_retries=2,
        gzip=True,
        capture_mode="v0",
        feature_flags_request_timeout_seconds=settings.flags_timeout,
        feature_flags_request_max_retries=0,
        enable_local_evaluation=False,
        enable_exception_autocapture=False,
        disable_geoip=True,
        on_error=_on_send_error,
    )


def _on_send_error(error: Exception, _batch: Any) -> None:
    # Runs on the consumer thread: keep it short, and never log the payload.
    log.warning("PostHog upload failed: %s", type(error).__name__)


def close_posthog(client: Any, timeout: float) -> None:
    """Flush, then shut the SDK down on a daemon thread so a dead host can't hang us."""
    try:
        client.flush(timeout_seconds=timeout)
    except Exception:  # telemetry must never break shutdown
        log.debug("PostHog flush failed", exc_info=True)
    worker = threading.Thread(target=_quiet_shutdown, args=(client,), daemon=True)
    worker.start()
    worker.join(timeout)


def _quiet_shutdown(client: Any) -> None:
    try:
        client.shutdown()
    except Exception:
        log.debug("PostHog shutdown failed", exc_info=True)
