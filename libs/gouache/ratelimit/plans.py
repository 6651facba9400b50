"""Plans and their limits, as settings carry them (GOUACHE_<SVC>_RATE_LIMIT_PLANS)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from gouache.ratelimit.gcra import Rate
from gouache.runtime.context import DEFAULT_PLAN

# Idle keys vanish from the store after this long; a plan must refill within it, or a key
# that expired early would hand its owner a fresh burst.
KEY_TTL_S = 3600.0


class PlanLimit(BaseModel):
    """A plan's limit per user, and per API key (the user's numbers unless set)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_minute: float = Field(gt=0)
    burst: int = Field(ge=1)
    key_per_minute: float | None = Field(default=None, gt=0)
    key_burst: int | None = Field(default=None, ge=1)

    @property
    def user_rate(self) -> Rate:
        return Rate(self.per_minute, self.burst)

    @property
    def key_rate(self) -> Rate:
        return Rate(self.key_per_minute or self.per_minute, self.key_burst or self.burst)

    @model_validator(mode="after")
    def _refills_within_ttl(self) -> PlanLimit:
        for rate in (self.user_rate, self.key_rate):
            if rate.refill_s > KEY_TTL_S:
                raise ValueError(
                    f"a burst of {rate.burst} at {rate.per_minute:g} per minute takes "
                    f"{rate.refill_s:.0f} s to refill, longer than the store keeps idle keys "
                    f"({KEY_TTL_S:.0f} s); raise per_minute or lower burst"
                )
        return self


def default_plans() -> dict[str, PlanLimit]:
    """Product requirements §11.3: 60 requests per minute per user, with bursts."""
    return {
        DEFAULT_PLAN: PlanLimit(per_minute=60, burst=20),
        "pro": PlanLimit(per_minute=600, burst=100),
        "enterprise": PlanLimit(per_minute=6000, burst=1000),
    }


_PLANS = TypeAdapter(dict[str, PlanLimit])


def parse_plans(text: str) -> dict[str, PlanLimit]:
    """Plans from their JSON form (`{"free": {"per_minute": 60, "burst": 20}, ...}`), checked
    as the services check them; ValueError with a message naming what is wrong."""
    try:
        plans = _PLANS.validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'plans'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise ValueError(problems) from None
    if DEFAULT_PLAN not in plans:
        raise ValueError(f"plans must define {DEFAULT_PLAN!r}, the plan of tokens without one")
    return plans
