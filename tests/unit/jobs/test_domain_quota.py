"""Plan quotas: which limit applies to whom, and the refusal once a month's compute is used."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gouache.runtime.context import Principal
from gouache.runtime.errors import ResourceExhausted
from services.jobs.domain.quota import (
    DEFAULT_COMPUTE_QUOTAS_S,
    QuotaPolicy,
    check_compute,
    check_quotas,
    month_of,
    next_month_start,
)
from services.jobs.settings import JobsSettings

NOV = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)


def test_months_and_their_resets_are_utc_calendar_months() -> None:
    assert month_of(NOV) == "2026-11"
    assert next_month_start(NOV) == datetime(2026, 12, 1, tzinfo=UTC)
    december = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    assert (month_of(december), next_month_start(december)) == (
        "2026-12",
        datetime(2027, 1, 1, tzinfo=UTC),
    )


def test_the_plan_decides_the_limit_and_admins_and_services_have_none() -> None:
    policy = QuotaPolicy({"free": 600, "pro": 36_000, "enterprise": 0})
    assert policy.limit_s(Principal("usr_1", "user")) == 600
    assert policy.limit_s(Principal("usr_1", "user", plan="pro")) == 36_000
    assert policy.limit_s(Principal("usr_1", "user", plan="enterprise")) is None
    # A plan that is not a known tier counts as free, like the rate limiter's tiers.
    assert policy.limit_s(Principal("usr_1", "user", plan="gold")) == 600
    assert policy.limit_s(Principal("usr_a", "admin", plan="free")) is None
    service = Principal("svc", "service", scopes=frozenset({"internal"}))
    assert policy.limit_s(service) is None


def test_under_the_quota_passes_at_it_is_refused_with_what_was_used_and_when_it_resets() -> None:
    check_compute("free", 600, 599_999, NOV)
    with pytest.raises(ResourceExhausted) as caught:
        check_compute("free", 600, 612_400, NOV)
    error = caught.value
    assert error.message.startswith(
        "the free plan's 600 compute-seconds for November 2026 are used (612 s, 0 s left); "
        "the quota resets on 2026-12-01T00:00Z"
    )
    assert error.reason == "quota_exceeded"
    assert error.retry_after_s is None  # clients must not retry it within seconds
    assert error.metadata == {
        "plan": "free",
        "quota_compute_seconds": "600",
        "used_compute_seconds": "612.400",
        "period": "2026-11",
        "resets_at": "2026-12-01T00:00:00Z",
    }


def test_quota_settings_keep_defaults_and_refuse_unknown_plans_or_negatives() -> None:
    assert check_quotas({"pro": 5}) == {**DEFAULT_COMPUTE_QUOTAS_S, "pro": 5}
    with pytest.raises(ValueError, match="unknown plans gold"):
        check_quotas({"gold": 1})
    with pytest.raises(ValueError, match="free is negative"):
        check_quotas({"free": -1})
    settings = JobsSettings(compute_quotas={"free": 60})
    assert settings.compute_quotas == {"free": 60, "pro": 36_000, "enterprise": 0}


def test_the_quota_variable_is_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOUACHE_JOBS_COMPUTE_QUOTAS", '{"pro": 7200, "enterprise": 1000000}')
    assert JobsSettings().compute_quotas == {"free": 600, "pro": 7200, "enterprise": 1_000_000}
    monkeypatch.setenv("GOUACHE_JOBS_COMPUTE_QUOTAS", '{"platinum": 1}')
    with pytest.raises(ValueError, match="unknown plans platinum"):
        JobsSettings()
