"""Plan rules without a network: the known names (one source), validation, the claim."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gouache.priority import TIERS
from gouache.runtime.errors import InvalidArgument
from services.auth.domain.plans import PLANS, PlanChange, validate_new_plan, validate_plan
from services.auth.domain.rules import token_claims

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_the_plans_are_the_priority_tiers() -> None:
    assert PLANS is TIERS
    assert set(PLANS) == {"free", "pro", "enterprise"}


@pytest.mark.parametrize(
    ("raw", "plan"),
    [("free", "free"), ("pro", "pro"), (" Enterprise ", "enterprise"), ("PRO", "pro")],
)
def test_known_plans_are_accepted_trimmed_and_lower_cased(raw: str, plan: str) -> None:
    assert validate_plan(raw) == plan
    assert validate_new_plan(raw) == plan


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("gold", "plan_unknown"),
        ("premium ", "plan_unknown"),
        ("", "plan_missing"),
        ("  ", "plan_missing"),
    ],
)
def test_unknown_or_missing_plans_name_the_known_ones(raw: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_plan(raw)
    assert caught.value.reason == reason
    assert "plan must be one of enterprise, pro, free" in caught.value.message


def test_a_new_users_plan_defaults_to_free_but_a_wrong_one_is_refused() -> None:
    assert validate_new_plan("") == "free"
    with pytest.raises(InvalidArgument, match="got 'platinum'"):
        validate_new_plan("platinum")


@pytest.mark.parametrize(
    ("plan", "claimed"), [("pro", "pro"), ("enterprise", "enterprise"), ("", None)]
)
def test_token_claims_carry_the_plan(plan: str, claimed: str | None) -> None:
    claims = token_claims(
        user_id="usr_1",
        role="user",
        email="a@example.com",
        scopes=("read:jobs",),
        now=NOW,
        ttl_s=900,
        issuer="iss",
        audience="aud",
        plan=plan,
    )
    assert claims.get("plan") == claimed


@pytest.mark.parametrize(
    ("before", "after", "changed"), [("free", "pro", True), ("pro", "pro", False)]
)
def test_a_plan_change_knows_whether_it_changed(before: str, after: str, changed: bool) -> None:
    assert PlanChange("usr_1", after, before, "user").changed is changed
