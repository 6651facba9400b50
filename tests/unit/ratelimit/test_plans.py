"""Plans from their JSON form, checked the way the services check them."""

from __future__ import annotations

import re

import pytest

from gouache.ratelimit.plans import PlanLimit, parse_plans


def test_plans_parse_into_limits() -> None:
    plans = parse_plans(
        '{"free": {"per_minute": 60, "burst": 20}, "pro": {"per_minute": 600, "burst": 100}}'
    )
    assert plans == {
        "free": PlanLimit(per_minute=60, burst=20),
        "pro": PlanLimit(per_minute=600, burst=100),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{bad", "plans: Invalid JSON"),
        ("[]", "plans: Input should be an object"),
        ('{"pro": {"per_minute": 5, "burst": 1}}', "plans must define 'free'"),
        ('{"free": {"per_minute": 60}}', "free.burst: Field required"),
        ('{"free": {"per_minute": 60, "burst": 1, "speed": 2}}', "free.speed: Extra inputs"),
        ('{"free": {"per_minute": 0.001, "burst": 100}}', "longer than the store keeps idle keys"),
    ],
)
def test_bad_plans_name_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_plans(text)
