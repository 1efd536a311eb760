"""Token buckets per (IP, route) and the trusted-proxy client IP rule."""

from __future__ import annotations

import threading

import pytest

from jupyter_agnes.auth.ratelimit import RateLimiter, client_ip, parse_networks


def limiter(**kw: object) -> RateLimiter:
    base = dict(enabled=True, per_minute=10, max_keys=1000, trusted_proxies=[])
    base.update(kw)
    return RateLimiter(**base)


def test_bucket_allows_burst_then_limits_with_retry_after() -> None:
    rl = limiter(per_minute=10)
    key = ("203.0.113.9", "login")
    results = [rl.check(key, now=100.0) for _ in range(10)]
    assert results == [(True, 0)] * 10
    allowed, retry = rl.check(key, now=100.0)
    assert not allowed and retry == 6  # one token per 6 s at 10/min
    assert rl.blocked(key, now=100.0) == 6


def test_bucket_refills_over_time() -> None:
    rl = limiter(per_minute=60)
    key = ("203.0.113.9", "login")
    for _ in range(60):
        rl.check(key, now=0.0)
    assert rl.check(key, now=0.5)[0] is False
    assert rl.check(key, now=1.0) == (True, 0)
    assert rl.check(key, now=1.0)[0] is False
    assert rl.check(key, now=1000.0) == (True, 0)  # capped at capacity, not 1000 tokens
    for _ in range(59):
        assert rl.check(key, now=1000.0)[0]
    assert rl.check(key, now=1000.0)[0] is False


def test_routes_and_ips_have_separate_buckets() -> None:
    rl = limiter(per_minute=1)
    assert rl.check(("1.1.1.1", "login"), now=0)[0]
    assert not rl.check(("1.1.1.1", "login"), now=0)[0]
    assert rl.check(("1.1.1.1", "callback"), now=0)[0]
    assert rl.check(("2.2.2.2", "login"), now=0)[0]


def test_blocked_does_not_spend() -> None:
    rl = limiter(per_minute=2)
    key = ("1.1.1.1", "bearer")
    for _ in range(10):
        assert rl.blocked(key, now=0) == 0
    assert len(rl) == 0  # peeking at an unknown key does not allocate
    rl.check(key, now=0)
    rl.check(key, now=0)
    assert rl.blocked(key, now=0) == 30


def test_disabled_never_limits() -> None:
    rl = limiter(enabled=False, per_minute=1)
    assert all(rl.check(("1.1.1.1", "login"), now=0) == (True, 0) for _ in range(100))
    assert rl.blocked(("1.1.1.1", "login"), now=0) == 0


def test_memory_is_bounded_and_oldest_evicted() -> None:
    rl = limiter(per_minute=1, max_keys=100)
    rl.check(("victim", "login"), now=0)
    assert not rl.check(("victim", "login"), now=0)[0]
    for i in range(10_000):  # an attacker rotating through addresses
        rl.check((f"10.0.{i // 256}.{i % 256}", "login"), now=0)
    assert len(rl) == 100
    # the oldest key was evicted, so it starts over with a full bucket
    assert rl.check(("victim", "login"), now=0)[0]


def test_first_refusal_is_reported_once_a_minute_per_key() -> None:
    rl = limiter(max_keys=3)
    a, b = ("203.0.113.9", "login"), ("203.0.113.9", "bearer")
    assert rl.first_refusal(a, now=0.0)
    assert not rl.first_refusal(a, now=30.0)
    assert rl.first_refusal(b, now=30.0)  # another route is another key
    assert not rl.first_refusal(a, now=59.9)
    assert rl.first_refusal(a, now=60.0)
    for i in range(10):  # bounded like the buckets: the oldest report is forgotten
        rl.first_refusal((f"10.0.0.{i}", "login"), now=61.0)
    assert rl.first_refusal(a, now=61.0)


def test_recently_used_key_survives_eviction() -> None:
    rl = limiter(per_minute=1, max_keys=3)
    rl.check("a", now=0)
    rl.check("b", now=0)
    rl.check("c", now=0)
    rl.check("a", now=0)  # touch a: now b is the oldest
    rl.check("d", now=0)
    assert not rl.check("a", now=0)[0]  # still limited: it was kept
    assert rl.check("b", now=0)[0]  # evicted, fresh bucket


def test_threads_never_exceed_the_budget() -> None:
    rl = limiter(per_minute=50)
    allowed: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(100):
            ok, _ = rl.check(("1.1.1.1", "login"), now=0)
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 50


def test_settings_from_env(monkeypatch) -> None:
    monkeypatch.setenv("AGNES_AUTH_RATELIMIT_PER_MINUTE", "3")
    monkeypatch.setenv("AGNES_AUTH_RATELIMIT_ENABLED", "0")
    monkeypatch.setenv("AGNES_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")
    rl = RateLimiter()
    assert (rl.per_minute, rl.enabled, rl.trusted_proxies) == (
        3,
        False,
        ["10.0.0.0/8", "127.0.0.1"],
    )
    assert rl.client_ip("10.1.2.3", "198.51.100.7") == "198.51.100.7"


@pytest.mark.parametrize("bad", ["0", "-5", "lots"])
def test_bad_per_minute_falls_back_to_default(monkeypatch, bad: str) -> None:
    monkeypatch.setenv("AGNES_AUTH_RATELIMIT_PER_MINUTE", bad)
    assert RateLimiter().per_minute == 10


def test_bad_trusted_proxy_fails_loudly() -> None:
    with pytest.raises(Exception, match="not-an-ip"):
        RateLimiter(trusted_proxies=["10.0.0.1", "not-an-ip"])


# --- client IP ------------------------------------------------------------------------

PROXIES = parse_networks(["10.0.0.0/8", "::1", "192.168.1.5"])


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        # an untrusted peer cannot choose its bucket by spoofing X-Forwarded-For
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),
        ("203.0.113.9", None, "203.0.113.9"),
        # a trusted proxy: the first untrusted hop from the right is the client
        ("10.0.0.2", "198.51.100.7", "198.51.100.7"),
        ("10.0.0.2", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # leftmost is client-supplied
        ("10.0.0.2", "198.51.100.7, 10.9.9.9", "198.51.100.7"),  # chain of trusted proxies
        ("10.0.0.2", "10.1.1.1, 10.2.2.2", "10.1.1.1"),  # all trusted: leftmost
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", None, "10.0.0.2"),  # a trusted proxy that sent no header
        ("10.0.0.2", " , ,", "10.0.0.2"),
        ("10.0.0.2", "garbage", "10.0.0.2"),
        ("10.0.0.2", "6.6.6.6, garbage", "10.0.0.2"),
        ("10.0.0.2", "198.51.100.7:4711", "198.51.100.7"),
        ("10.0.0.2", "[2001:db8::1]:443", "2001:db8::1"),
        ("::1", "2001:db8::2", "2001:db8::2"),
        ("::ffff:10.0.0.2", "198.51.100.7", "198.51.100.7"),  # v4-mapped peer
        ("192.168.1.6", "198.51.100.7", "192.168.1.6"),  # neighbour of a trusted proxy
    ],
)
def test_client_ip(peer: str, xff: str | None, expected: str) -> None:
    assert client_ip(peer, xff, PROXIES) == expected


def test_client_ip_without_trusted_proxies_ignores_xff() -> None:
    assert client_ip("127.0.0.1", "1.2.3.4", []) == "127.0.0.1"


def test_client_ip_oversized_header() -> None:
    huge = ", ".join(["6.6.6.6"] * 100_000) + ", 198.51.100.7"
    # only the right end is read: padding cannot push the proxy-appended hop out
    assert client_ip("10.0.0.2", huge, PROXIES) == "198.51.100.7"


def test_client_ip_accepts_strings() -> None:
    assert client_ip("10.0.0.2", "198.51.100.7", ["10.0.0.0/8"]) == "198.51.100.7"


def test_the_last_fraction_of_a_token_waits_one_second() -> None:
    rl = limiter(per_minute=60)
    for _ in range(60):
        rl.check("k", now=0.0)
    assert rl.check("k", now=0.5) == (False, 1)
    assert rl.blocked("k", now=0.5) == 1


def test_defaults_without_env(monkeypatch) -> None:
    for knob in ("ENABLED", "PER_MINUTE", "MAX_KEYS"):
        monkeypatch.delenv(f"AGNES_AUTH_RATELIMIT_{knob}", raising=False)
    monkeypatch.delenv("AGNES_TRUSTED_PROXIES", raising=False)
    rl = RateLimiter()
    assert (rl.enabled, rl.per_minute, rl.max_keys, rl.trusted_proxies) == (True, 10, 10_000, [])
    monkeypatch.setenv("AGNES_AUTH_RATELIMIT_MAX_KEYS", "7")
    assert RateLimiter().max_keys == 7


def test_trusted_proxies_set_later_are_believed() -> None:
    rl = limiter()
    assert rl.client_ip("10.0.0.2", "198.51.100.7") == "10.0.0.2"
    assert not rl.is_trusted_proxy("10.0.0.2")
    rl.trusted_proxies = ["10.0.0.0/8"]
    assert rl.client_ip("10.0.0.2", "198.51.100.7") == "198.51.100.7"
    assert rl.is_trusted_proxy("10.0.0.2") and rl.is_trusted_proxy("[::ffff:10.0.0.2]:80")
    assert not rl.is_trusted_proxy("11.0.0.2") and not rl.is_trusted_proxy("garbage")


def test_network_lists_skip_blanks_and_name_a_bad_entry() -> None:
    assert parse_networks(["", "  ", " 10.0.0.1/8 ", "::1"]) == parse_networks(
        ["10.0.0.0/8", "::1/128"]
    )
    assert len(parse_networks(["", "10.0.0.1"])) == 1
    with pytest.raises(ValueError, match="Not an IP address or CIDR: 'nope'"):
        parse_networks(["10.0.0.1", "nope"])


def test_an_unparseable_peer_is_kept_short() -> None:
    assert client_ip("unix:/run/x.sock" + "s" * 100, "198.51.100.7", PROXIES) == (
        "unix:/run/x.sock" + "s" * 100
    )[:64]
    assert client_ip("", "198.51.100.7", PROXIES) == ""


def test_client_ip_header_of_exactly_the_limit_is_read_whole() -> None:
    head = "10.1.1.1"
    filler = ", 10.2.2.2"
    header = head + filler * ((4096 - len(head)) // len(filler))
    header = " " * (4096 - len(header)) + header
    assert len(header) == 4096
    assert client_ip("10.0.0.2", header, PROXIES) == "10.1.1.1"  # all trusted: leftmost
    # one byte more and the first hop may be cut: it is dropped
    assert client_ip("10.0.0.2", "9" + header, PROXIES) == "10.2.2.2"


def test_first_refusal_on_the_real_clock_and_late_in_the_day() -> None:
    rl = limiter(max_keys=3)
    assert rl.first_refusal("k") and not rl.first_refusal("k")  # time.monotonic()
    assert rl.first_refusal("late", now=1000.0)
    assert not rl.first_refusal("late", now=1030.0)
    assert rl.first_refusal("late", now=1060.0)
    for key in ("a", "b"):
        rl.first_refusal(key, now=1061.0)
    assert not rl.first_refusal("late", now=1061.0)  # max_keys reports are all kept


def test_a_whole_token_is_enough_to_try_again() -> None:
    rl = limiter(per_minute=1)
    rl.check("k", now=0.0)
    assert rl.blocked("k", now=60.0) == 0  # exactly one token back
    rl = limiter(per_minute=60)
    for _ in range(60):
        rl.check("k", now=0.0)
    assert rl.blocked("k", now=1.5) == 0  # one and a half


def test_client_ip_odd_hops_and_proxy_entries() -> None:
    # an unclosed bracket is garbage (stop at the last good hop), not a crash
    assert client_ip("10.0.0.2", "198.51.100.7, [::1", PROXIES) == "10.0.0.2"
    # [v6]:port ends at the first closing bracket
    assert client_ip("10.0.0.2", "[2001:db8::1]:8]", PROXIES) == "2001:db8::1"
    # a proxy entry with host bits set still names its network
    assert client_ip("10.0.0.2", "198.51.100.7", ["10.0.0.1/8"]) == "198.51.100.7"


def test_an_oversized_header_drops_its_first_hop_even_when_whole() -> None:
    client = "198.51.100.7"
    # exactly 4096 characters: the client's hop, then trusted proxies
    right = client + ", 10.0.0.1" * 404 + ", 10.0.0.11" * 4
    assert len(right) == 4096
    # the cut-off first hop cannot be known whole, so it is dropped: all trusted, leftmost
    assert client_ip("10.0.0.2", "6.6.6.6," + right, PROXIES) == "10.0.0.1"
    # a partial hop first, then the client: the client is the first hop kept
    right = "6.6," + client + ",10.0.0.1" * 450 + ",10.0.0.11" * 3
    assert len(right) == 4096
    assert client_ip("10.0.0.2", "9" * 100 + right, PROXIES) == client
    # hops are split on commas, spaces or none
    assert client_ip("10.0.0.2", "6.6.6.6," * 1000 + client + ",10.0.0.1", PROXIES) == client


def test_the_real_clock_is_used_when_no_time_is_given() -> None:
    rl = limiter(per_minute=1)
    assert rl.check("k") == (True, 0)  # time.monotonic()
    allowed, retry = rl.check("k")
    assert not allowed and 0 < retry <= 60
    assert 0 < rl.blocked("k") <= 60


def test_changing_another_setting_keeps_the_trusted_proxies() -> None:
    rl = limiter(trusted_proxies=["10.0.0.0/8"])
    rl.per_minute = 5
    rl.enabled = False
    assert rl.client_ip("10.0.0.2", "198.51.100.7") == "198.51.100.7"
    assert rl.per_minute == 5 and rl.check("k") == (True, 0)
