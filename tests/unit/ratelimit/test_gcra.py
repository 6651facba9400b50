"""The pure GCRA decision: bursts, the steady rate, retry-after, independence of keys."""

from __future__ import annotations

import pytest

from gouache.ratelimit.gcra import Decision, Rate, decide

PER_SECOND = Rate(per_minute=60, burst=3)


def _run(rate: Rate, times: list[float], tat: float | None = None) -> list[Decision]:
    decisions = []
    for now in times:
        decision = decide(tat, now, rate)
        if decision.allowed:
            tat = decision.tat
        decisions.append(decision)
    return decisions


def test_an_idle_key_admits_a_burst_then_refuses() -> None:
    decisions = _run(PER_SECOND, [100.0] * 4)
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[3].retry_after_s == pytest.approx(1.0)


def test_retry_after_is_exactly_when_the_next_request_is_admitted() -> None:
    rate = Rate(per_minute=20, burst=1)  # one every 3 s
    first, second = _run(rate, [10.0, 10.5])
    assert first.allowed
    assert not second.allowed
    assert second.retry_after_s == pytest.approx(2.5)
    assert not decide(first.tat, 10.0 + 2.999, rate).allowed
    assert decide(first.tat, 13.0, rate).allowed


def test_the_steady_rate_is_per_minute() -> None:
    # Ten requests a second for a minute after the burst: 60 more are admitted, not 600.
    times = [0.0] * 3 + [0.1 * i for i in range(1, 601)]
    admitted = sum(d.allowed for d in _run(PER_SECOND, times))
    assert admitted == 3 + 60


def test_requests_exactly_at_the_rate_are_never_refused() -> None:
    decisions = _run(Rate(per_minute=120, burst=1), [0.5 * i for i in range(200)])
    assert all(d.allowed for d in decisions)


def test_a_refusal_costs_nothing() -> None:
    rate = Rate(per_minute=60, burst=1)
    tat = decide(None, 0.0, rate).tat
    refused = decide(tat, 0.5, rate)
    assert not refused.allowed
    assert refused.tat == tat
    assert decide(tat, 1.0, rate).allowed


def test_an_idle_key_refills_to_the_burst_not_beyond() -> None:
    decisions = _run(PER_SECOND, [0.0] * 3 + [3600.0] * 4)
    assert [d.allowed for d in decisions] == [True] * 6 + [False]


def test_keys_are_independent() -> None:
    states: dict[str, float | None] = {"alice": None, "bob": None}
    outcomes: dict[str, list[bool]] = {"alice": [], "bob": []}
    for key in ["alice"] * 4 + ["bob"] * 2:
        decision = decide(states[key], 0.0, PER_SECOND)
        if decision.allowed:
            states[key] = decision.tat
        outcomes[key].append(decision.allowed)
    assert outcomes == {"alice": [True, True, True, False], "bob": [True, True]}


@pytest.mark.parametrize(("per_minute", "burst"), [(0, 1), (-5, 1), (60, 0)])
def test_a_rate_needs_positive_numbers(per_minute: float, burst: int) -> None:
    with pytest.raises(ValueError, match="per_minute > 0"):
        Rate(per_minute, burst)
