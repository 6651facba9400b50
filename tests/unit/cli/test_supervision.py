"""The restart policy: backoff doubling to a cap, reset after a healthy run, crash loops."""

from __future__ import annotations

import pytest

from gouache.cli.supervision import GiveUp, Restart, RestartHistory, RestartPolicy, on_crash

POLICY = RestartPolicy(
    initial_backoff_s=0.5, max_backoff_s=30, healthy_after_s=60, max_restarts=5, window_s=300
)


def _crash_at(times: list[float], policy: RestartPolicy = POLICY) -> list[object]:
    """Crashes at each time with no healthy run in between; the decisions."""
    history = RestartHistory()
    decisions = []
    for now in times:
        decision, history = on_crash(policy, history, now)
        decisions.append(decision)
    return decisions


def test_backoff_doubles_from_the_initial_delay_to_the_cap() -> None:
    policy = RestartPolicy(max_restarts=100, window_s=1)
    delays = [
        d.delay_s
        for d in _crash_at([10.0 * i for i in range(10)], policy)
        if isinstance(d, Restart)
    ]
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]


def test_attempts_are_counted() -> None:
    decisions = _crash_at([0, 1, 2])
    assert [d.attempt for d in decisions if isinstance(d, Restart)] == [1, 2, 3]


def test_a_healthy_run_of_healthy_after_s_resets_the_backoff() -> None:
    history = RestartHistory()
    decision, history = on_crash(POLICY, history, 0)
    _, history = on_crash(POLICY, history.healthy(1), 2)  # healthy 1 s: not long enough
    decision, history = on_crash(POLICY, history.healthy(3), 4)
    assert decision == Restart(2.0, 3)
    decision, history = on_crash(POLICY, history.healthy(5), 5 + 60)
    assert decision == Restart(0.5, 4)


def test_a_crash_while_starting_keeps_doubling() -> None:
    history = RestartHistory()
    _, history = on_crash(POLICY, history, 0)
    # Restarted, never healthy, crashed again: the streak goes on.
    decision, _ = on_crash(POLICY, history, 1)
    assert decision == Restart(1.0, 2)


def test_more_than_max_restarts_within_the_window_gives_up() -> None:
    decisions = _crash_at([0, 10, 20, 30, 40, 50])
    assert all(isinstance(d, Restart) for d in decisions[:5])
    assert isinstance(decisions[5], GiveUp)
    assert decisions[5].reason == "crashed 6 times within 300 s (limit: 5 restarts)"


def test_crashes_older_than_the_window_are_forgotten() -> None:
    decisions = _crash_at([0, 100, 200, 300, 400, 500, 600, 700])
    assert all(isinstance(d, Restart) for d in decisions)


def test_healthy_runs_do_not_hide_a_crash_loop() -> None:
    history = RestartHistory()
    decision: object = None
    for i in range(6):
        decision, history = on_crash(POLICY, history.healthy(i * 40.0), i * 40.0 + 30)
    assert isinstance(decision, GiveUp)


def test_zero_restarts_gives_up_at_the_first_crash() -> None:
    assert isinstance(_crash_at([0], RestartPolicy(max_restarts=0))[0], GiveUp)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_backoff_s": 0},
        {"initial_backoff_s": 5, "max_backoff_s": 1},
        {"multiplier": 0.5},
        {"healthy_after_s": 0},
        {"window_s": -1},
        {"max_restarts": -1},
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RestartPolicy(**kwargs)  # type: ignore[arg-type]
