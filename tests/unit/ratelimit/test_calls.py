"""CallLimiter: who is limited, which keys are charged, what a refusal says, store failures."""

from __future__ import annotations

import pytest

from gouache.ratelimit.calls import RATE_LIMITED, CallLimiter
from gouache.ratelimit.limiter import RateLimiter
from gouache.ratelimit.metrics import DECISIONS, STORE_ERRORS
from gouache.ratelimit.plans import PlanLimit, default_plans
from gouache.runtime.context import Principal
from gouache.runtime.errors import ResourceExhausted, Unavailable
from tests.unit.ratelimit.memory_store import MemoryStore

PLANS = {
    "free": PlanLimit(per_minute=60, burst=2),
    "pro": PlanLimit(per_minute=600, burst=5, key_burst=3),
}
ALICE = Principal(user_id="usr_alice", role="user", scopes=frozenset({"read:jobs"}))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limiter(store: MemoryStore, clock: Clock, *, fail_open: bool = True) -> CallLimiter:
    return CallLimiter("jobs", RateLimiter(store), PLANS, fail_open=fail_open, clock=clock)


async def _admitted(limiter: CallLimiter, principal: Principal, calls: int) -> int:
    admitted = 0
    for _ in range(calls):
        try:
            await limiter.check(principal)
        except ResourceExhausted:
            continue
        admitted += 1
    return admitted


async def test_a_refusal_says_the_limit_the_plan_and_when_to_retry() -> None:
    clock = Clock()
    limiter = _limiter(MemoryStore(), clock)
    await limiter.check(ALICE)
    await limiter.check(ALICE)
    clock.now += 0.25
    with pytest.raises(ResourceExhausted) as refused:
        await limiter.check(ALICE)
    error = refused.value
    assert error.message == (
        "rate limit of 60 requests per minute for plan free exceeded; retry in 1 s"
    )
    assert error.reason == RATE_LIMITED
    assert error.retry_after_s == pytest.approx(0.75)
    assert error.metadata == {
        "plan": "free",
        "scope": "user",
        "per_minute": "60",
        "burst": "2",
        "retry_after_s": "1",
    }


async def test_users_are_independent() -> None:
    limiter = _limiter(MemoryStore(), Clock())
    bob = Principal(user_id="usr_bob", role="user")
    assert await _admitted(limiter, ALICE, 5) == 2
    assert await _admitted(limiter, bob, 5) == 2


async def test_the_plan_claim_picks_the_limit_and_unknown_plans_are_free() -> None:
    limiter = _limiter(MemoryStore(), Clock())
    pro = Principal(user_id="usr_pro", role="user", plan="pro")
    odd = Principal(user_id="usr_odd", role="user", plan="platinum")
    assert await _admitted(limiter, pro, 10) == 5
    assert await _admitted(limiter, odd, 10) == 2


async def test_an_api_key_has_its_own_limit_beside_the_users() -> None:
    store = MemoryStore()
    limiter = _limiter(store, Clock())
    key_one = Principal(user_id="usr_pro", role="user", plan="pro", api_key_id="k1")
    key_two = Principal(user_id="usr_pro", role="user", plan="pro", api_key_id="k2")
    assert await _admitted(limiter, key_one, 10) == 3
    with pytest.raises(ResourceExhausted, match="per API key for plan pro") as refused:
        await limiter.check(key_one)
    assert refused.value.metadata["scope"] == "api_key"
    # The user's limit (5) still binds across keys: key two gets what the user has left.
    assert await _admitted(limiter, key_two, 10) == 2
    assert set(store.values) == {"user.usr_pro", "key.k1", "key.k2"}


@pytest.mark.parametrize(
    "principal",
    [
        Principal(user_id="svc_jobs", role="service", scopes=frozenset({"internal"})),
        Principal(user_id="svc_operator", role="operator"),
    ],
)
async def test_platform_accounts_are_not_limited(principal: Principal) -> None:
    store = MemoryStore()
    limiter = _limiter(store, Clock())
    assert await _admitted(limiter, principal, 50) == 50
    assert store.values == {}


async def test_an_unreachable_store_lets_calls_through_when_failing_open() -> None:
    store = MemoryStore()
    store.down = True
    errors_before = STORE_ERRORS.labels("jobs")._value.get()
    open_before = DECISIONS.labels("jobs", "free", "fail_open")._value.get()
    limiter = _limiter(store, Clock())
    assert await _admitted(limiter, ALICE, 5) == 5
    assert STORE_ERRORS.labels("jobs")._value.get() - errors_before == 5
    assert DECISIONS.labels("jobs", "free", "fail_open")._value.get() - open_before == 5


async def test_an_unreachable_store_refuses_calls_when_failing_closed() -> None:
    store = MemoryStore()
    store.down = True
    limiter = _limiter(store, Clock(), fail_open=False)
    with pytest.raises(Unavailable, match="rate limit store is unreachable"):
        await limiter.check(ALICE)


async def test_decisions_are_counted_by_plan() -> None:
    allowed = DECISIONS.labels("jobs", "free", "allowed")._value.get()
    limited = DECISIONS.labels("jobs", "free", "limited")._value.get()
    await _admitted(_limiter(MemoryStore(), Clock()), ALICE, 3)
    assert DECISIONS.labels("jobs", "free", "allowed")._value.get() - allowed == 2
    assert DECISIONS.labels("jobs", "free", "limited")._value.get() - limited == 1


def test_the_default_plans_follow_the_requirements() -> None:
    free = default_plans()["free"]
    assert (free.per_minute, free.burst) == (60, 20)


def test_a_plan_that_cannot_refill_before_its_keys_expire_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than the store keeps idle keys"):
        PlanLimit(per_minute=1, burst=100)


def test_plans_must_include_the_default_plan() -> None:
    with pytest.raises(ValueError, match="'free'"):
        CallLimiter("jobs", RateLimiter(MemoryStore()), {"pro": PLANS["pro"]})
