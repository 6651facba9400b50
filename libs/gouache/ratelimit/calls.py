"""The rate limit on public calls: whom it applies to, which keys it charges, what it answers.

Each call by a user is charged to two keys, `user.<id>` and, when the token was exchanged
for an API key, `key.<id>`; both limits apply, with the numbers of the token's plan.
Services (role service, scope internal) and the canary operator are platform accounts and
are not limited; methods without a token (health, reflection, IssueToken, GetJwks) are not
either: IssueToken is guarded by auth's lockout of failing credentials, and every call made
with the token it returns is limited.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping

from gouache.ratelimit.gcra import Decision, Rate
from gouache.ratelimit.kv import NatsKvStore, kv_key
from gouache.ratelimit.limiter import RateLimiter, StoreUnavailable
from gouache.ratelimit.metrics import DECISIONS, STORE_ERRORS
from gouache.ratelimit.plans import PlanLimit
from gouache.runtime.context import DEFAULT_PLAN, Principal
from gouache.runtime.errors import ResourceExhausted, Unavailable
from gouache.runtime.server import ServiceSpec
from gouache.runtime.settings import ServiceSettings

logger = logging.getLogger(__name__)

RATE_LIMITED = "RATE_LIMITED"
# Platform accounts: never limited.
EXEMPT_ROLES = frozenset({"service", "operator"})


class CallLimiter:
    """Admits or refuses one authenticated call; refusals raise RESOURCE_EXHAUSTED."""

    def __init__(
        self,
        service: str,
        limiter: RateLimiter,
        plans: Mapping[str, PlanLimit],
        *,
        fail_open: bool = True,
        clock: Callable[[], float] = time.time,
        log_interval_s: float = 60.0,
    ) -> None:
        if DEFAULT_PLAN not in plans:
            raise ValueError(f"the rate limit plans must include {DEFAULT_PLAN!r}")
        self._service = service
        self._limiter = limiter
        self._plans = dict(plans)
        self._fail_open = fail_open
        self._clock = clock
        self._log_interval_s = log_interval_s
        self._last_logged = -math.inf

    async def check(self, principal: Principal) -> None:
        """Charges the call to the principal's keys, or raises why it may not proceed."""
        if principal.role in EXEMPT_ROLES or principal.is_service:
            return
        plan = principal.plan if principal.plan in self._plans else DEFAULT_PLAN
        limit = self._plans[plan]
        now = self._clock()
        charges = [(kv_key("user", principal.user_id), limit.user_rate, "user")]
        if principal.api_key_id:
            charges.append((kv_key("key", principal.api_key_id), limit.key_rate, "api_key"))
        try:
            decisions = await self._limiter.acquire_all(
                [(key, rate) for key, rate, _ in charges], now
            )
        except StoreUnavailable as exc:
            self._store_failed(plan, exc)
            return
        refused = [
            (decision, rate, scope)
            for decision, (_, rate, scope) in zip(decisions, charges, strict=True)
            if not decision.allowed
        ]
        if not refused:
            DECISIONS.labels(self._service, plan, "allowed").inc()
            return
        DECISIONS.labels(self._service, plan, "limited").inc()
        decision, rate, scope = max(refused, key=lambda item: item[0].retry_after_s)
        raise _limited(plan, rate, scope, decision)

    def _store_failed(self, plan: str, exc: StoreUnavailable) -> None:
        STORE_ERRORS.labels(self._service).inc()
        now = time.monotonic()
        if now - self._last_logged >= self._log_interval_s:
            self._last_logged = now
            logger.warning(
                "rate limit store unavailable; calls are %s: %s",
                "let through" if self._fail_open else "refused",
                exc,
                extra={"service": self._service},
            )
        if self._fail_open:
            DECISIONS.labels(self._service, plan, "fail_open").inc()
            return
        DECISIONS.labels(self._service, plan, "fail_closed").inc()
        raise Unavailable(
            "the rate limit store is unreachable, so calls are refused; retry in a few seconds",
            reason="RATE_LIMIT_STORE_UNAVAILABLE",
            retry_after_s=1.0,
        )


def _limited(plan: str, rate: Rate, scope: str, decision: Decision) -> ResourceExhausted:
    retry_s = max(1, math.ceil(decision.retry_after_s))
    per_key = " per API key" if scope == "api_key" else ""
    return ResourceExhausted(
        f"rate limit of {rate.per_minute:g} requests per minute{per_key} for plan {plan} "
        f"exceeded; retry in {retry_s} s",
        reason=RATE_LIMITED,
        metadata={
            "plan": plan,
            "scope": scope,
            "per_minute": f"{rate.per_minute:g}",
            "burst": str(rate.burst),
            "retry_after_s": str(retry_s),
        },
        retry_after_s=decision.retry_after_s,
    )


def limit_calls(spec: ServiceSpec, settings: ServiceSettings) -> ServiceSpec:
    """Puts the rate limit of settings on a public service: the spec's guard, and hooks that
    open and close its store. Nothing changes when rate_limit_nats_url is empty."""
    if not settings.rate_limit_nats_url:
        return spec
    store = NatsKvStore(
        settings.rate_limit_nats_url, name=spec.name, replicas=settings.rate_limit_replicas
    )
    spec.guard = CallLimiter(
        spec.name,
        RateLimiter(store),
        settings.rate_limit_plans,
        fail_open=settings.rate_limit_fail_open,
    )
    spec.on_start.append(store.start)
    spec.on_stop.append(store.stop)
    return spec
