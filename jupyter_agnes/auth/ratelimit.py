"""In-memory token buckets per (client IP, route) for the auth endpoints.

Memory is bounded: past `max_keys` buckets the least recently used is evicted.
A check is a dict lookup under a lock, so it costs nothing measurable; callers
only consult it on login, callback and *failed* bearer authentications.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable

from traitlets import Bool, Int, List, Unicode, default, validate
from traitlets.config import Configurable

from jupyter_agnes.envknobs import env_bool, env_int, env_list

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> list[Network]:
    """IPs or CIDRs; a bad entry raises ValueError naming it."""
    nets: list[Network] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"Not an IP address or CIDR: {entry!r}") from exc
    return nets


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.partition(":")[0]
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: list[Network]) -> bool:
    return any(addr.version == n.version and addr in n for n in nets)


def client_ip(
    peer: str, x_forwarded_for: str | None, trusted_proxies: list[Network] | Iterable[str]
) -> str:
    """The client's address: the socket peer, unless that peer is a trusted proxy.

    Then X-Forwarded-For is read right to left, skipping trusted proxies; the first
    untrusted hop is the client. Entries left of it are client-supplied and ignored.
    """
    nets = [
        n if not isinstance(n, str) else ipaddress.ip_network(n, strict=False)
        for n in trusted_proxies
    ]
    peer_addr = _parse_ip(peer or "")
    if peer_addr is None:
        return (peer or "")[:64]
    if not nets or not x_forwarded_for or not _trusted(peer_addr, nets):
        return str(peer_addr)
    # Proxies append on the right, so keep the right end of an oversized header;
    # the cut-off first hop may be partial and is dropped.
    tail = x_forwarded_for[-4096:]
    hops = tail.split(",")[1:] if len(x_forwarded_for) > 4096 else tail.split(",")
    hops = [h for h in hops if h.strip()]
    result = peer_addr
    for hop in reversed(hops):
        addr = _parse_ip(hop)
        if addr is None:
            break  # garbage from a proxy we trust: stop at the last good hop
        result = addr
        if not _trusted(addr, nets):
            break
    return str(result)


class RateLimiter(Configurable):
    """Token bucket: `per_minute` requests, refilled continuously."""

    enabled = Bool(config=True, help="Rate-limit auth endpoints (AGNES_AUTH_RATELIMIT_ENABLED).")
    per_minute = Int(
        config=True, help="Requests per minute per IP and route (AGNES_AUTH_RATELIMIT_PER_MINUTE)."
    )
    max_keys = Int(
        config=True,
        help="Buckets kept in memory before the oldest is evicted (AGNES_AUTH_RATELIMIT_MAX_KEYS).",
    )
    trusted_proxies = List(
        Unicode(),
        config=True,
        help="IPs/CIDRs whose X-Forwarded-For is believed (AGNES_TRUSTED_PROXIES).",
    )

    @default("enabled")
    def _enabled(self) -> bool:
        return env_bool("AGNES_AUTH_RATELIMIT_ENABLED", True)

    @default("per_minute")
    def _per_minute(self) -> int:
        return env_int("AGNES_AUTH_RATELIMIT_PER_MINUTE", 10, minimum=1)

    @default("max_keys")
    def _max_keys(self) -> int:
        return env_int("AGNES_AUTH_RATELIMIT_MAX_KEYS", 10_000, minimum=1)

    @default("trusted_proxies")
    def _trusted_default(self) -> list[str]:
        return env_list("AGNES_TRUSTED_PROXIES")

    @validate("trusted_proxies")
    def _check_proxies(self, proposal: dict) -> list[str]:
        parse_networks(proposal["value"])  # fail at startup on a typo, not per request
        return list(proposal["value"])

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        # key -> (tokens, last refill time); ordered oldest-used first
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()
        self._reported: OrderedDict[Hashable, float] = OrderedDict()  # key -> last audited
        self._nets: list[Network] = parse_networks(self.trusted_proxies)
        self.observe(self._reparse, "trusted_proxies")

    def _reparse(self, change: dict) -> None:
        self._nets = parse_networks(change["new"])

    def client_ip(self, peer: str, x_forwarded_for: str | None) -> str:
        return client_ip(peer, x_forwarded_for, self._nets)

    def is_trusted_proxy(self, peer: str) -> bool:
        addr = _parse_ip(peer)
        return addr is not None and _trusted(addr, self._nets)

    def _refill(self, key: Hashable, now: float) -> float:
        capacity = float(self.per_minute)
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * capacity / 60.0)
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return tokens

    def _retry_after(self, tokens: float) -> int:
        return max(1, math.ceil((1.0 - tokens) * 60.0 / self.per_minute))

    def check(self, key: Hashable, now: float | None = None) -> tuple[bool, int]:
        """Spend one token. Returns (allowed, retry_after_seconds; 0 when allowed)."""
        if not self.enabled:
            return True, 0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens = self._refill(key, now)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return True, 0
            return False, self._retry_after(tokens)

    def blocked(self, key: Hashable, now: float | None = None) -> int:
        """Seconds until `key` may try again (0 = not limited), without spending a token."""
        if not self.enabled:
            return 0
        now = time.monotonic() if now is None else now
        with self._lock:
            if key not in self._buckets:
                return 0
            tokens = self._refill(key, now)
            return 0 if tokens >= 1.0 else self._retry_after(tokens)

    def first_refusal(self, key: Hashable, now: float | None = None) -> bool:
        """True for the first refusal of `key` in each minute: the one to audit, so a flood
        of refused attempts costs one audit row per client and route per minute."""
        now = time.monotonic() if now is None else now
        with self._lock:
            last = self._reported.get(key)
            if last is not None and now - last < 60.0:
                return False
            self._reported[key] = now
            self._reported.move_to_end(key)
            while len(self._reported) > self.max_keys:
                self._reported.popitem(last=False)
            return True

    def __len__(self) -> int:
        return len(self._buckets)
