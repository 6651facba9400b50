"""Prometheus metrics of the rate limiter (served on each service's metrics port)."""

from __future__ import annotations

from prometheus_client import Counter

DECISIONS = Counter(
    "gouache_ratelimit_decisions_total",
    "Rate limit decisions on public calls: allowed, limited, or let through (fail_open) or "
    "refused (fail_closed) because the store was unreachable.",
    ["service", "plan", "decision"],
)
STORE_ERRORS = Counter(
    "gouache_ratelimit_store_errors_total",
    "Rate limit store calls that failed (NATS unreachable, slow or not yet connected).",
    ["service"],
)
