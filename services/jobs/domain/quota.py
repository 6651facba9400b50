"""Monthly compute quotas of plans: what a plan may use, and the refusal when it is used.

Compute is the workers' time on succeeded jobs (ExecutionSucceeded.compute_ms), counted
per owner (the project the jobs belong to: all its members' jobs count together; a user's
own id is their personal project) and UTC calendar month when jobs applies the success; a
job answered from the result cache ran no model and costs nothing. The quota is checked
when a job (or a batch) is created, against what has finished so far: jobs still pending
or running when the quota runs out finish and are counted, so an owner can overshoot by
the compute of the jobs they had in flight at that moment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gouache.priority import DEFAULT_TIER, TIERS, tier_of
from gouache.runtime.context import Principal
from gouache.runtime.errors import ResourceExhausted

# Compute-seconds per UTC month for each plan; 0 is unlimited.
DEFAULT_COMPUTE_QUOTAS_S: dict[str, int] = {"free": 600, "pro": 36_000, "enterprise": 0}
QUOTA_EXCEEDED = "quota_exceeded"


def month_of(at: datetime) -> str:
    """The UTC calendar month of an instant, "2026-11": the period a counter covers."""
    return at.astimezone(UTC).strftime("%Y-%m")


def next_month_start(at: datetime) -> datetime:
    """Midnight UTC on the first day of the month after `at`'s: when its quota resets."""
    utc = at.astimezone(UTC)
    year, month = (utc.year + 1, 1) if utc.month == 12 else (utc.year, utc.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def check_quotas(quotas: Mapping[str, int]) -> dict[str, int]:
    """The per-plan quotas of a setting, or ValueError naming what is wrong."""
    unknown = sorted(set(quotas) - set(TIERS))
    if unknown:
        raise ValueError(
            f"compute quotas name unknown plans {', '.join(unknown)}: the plans are "
            f"{', '.join(TIERS)}"
        )
    negative = sorted(plan for plan, seconds in quotas.items() if seconds < 0)
    if negative:
        raise ValueError(
            f"compute quotas must be 0 (unlimited) or more seconds; {', '.join(negative)} "
            "is negative"
        )
    return {**DEFAULT_COMPUTE_QUOTAS_S, **quotas}


@dataclass(frozen=True)
class QuotaPolicy:
    """Each plan's monthly compute-seconds (0: unlimited); a plan not named here, or not a
    known tier, has the free plan's quota. Admins and services are never refused: their use
    is recorded, not limited."""

    compute_s: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_COMPUTE_QUOTAS_S))

    def limit_s(self, principal: Principal) -> int | None:
        """The caller's monthly compute-seconds, or None when nothing limits them."""
        if principal.is_admin or principal.is_service:
            return None
        plan = tier_of(principal.plan)
        seconds = self.compute_s.get(plan, self.compute_s.get(DEFAULT_TIER, 0))
        return seconds or None


def check_compute(plan: str, limit_s: int, used_ms: int, now: datetime) -> None:
    """Refuses new work once the month's compute reaches the plan's quota.

    RESOURCE_EXHAUSTED (HTTP 429) with reason quota_exceeded, saying what was used, what is
    left and when it resets; no Retry-After, so clients do not retry it within seconds.
    """
    limit_ms = limit_s * 1000
    if used_ms < limit_ms:
        return
    resets = next_month_start(now)
    month = now.astimezone(UTC).strftime("%B %Y")
    used_s = used_ms / 1000
    raise ResourceExhausted(
        f"the {plan} plan's {limit_s} compute-seconds for {month} are used ({used_s:.0f} s, "
        f"0 s left); the quota resets on {resets:%Y-%m-%dT%H:%MZ}: wait until then, or move "
        "to a larger plan",
        reason=QUOTA_EXCEEDED,
        metadata={
            "plan": plan,
            "quota_compute_seconds": str(limit_s),
            "used_compute_seconds": f"{used_s:.3f}",
            "period": month_of(now),
            "resets_at": f"{resets:%Y-%m-%dT%H:%M:%SZ}",
        },
    )
