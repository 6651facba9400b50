"""Cancellation: a fired token stops gatys within one optimisation step, and every family takes one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
import torch

from gouache.nst import registry
from gouache.nst.base import Canceled, Cancellation, StylizeControls, trained_style_keys
from gouache.nst.encoders import Lite0Encoder
from gouache.nst.families.gatys import GatysConfig, GatysFamily
from gouache.nst.registry import ModelSpec

STEPS = 12


class _FiresAfter(Cancellation):
    """A token that cancels itself on its `after`-th check and counts every check."""

    def __init__(self, after: int, on_check: Callable[[], None] = lambda: None) -> None:
        super().__init__()
        self.after = after
        self.checks = 0
        self._on_check = on_check

    def check(self) -> None:
        self.checks += 1
        self._on_check()
        if self.checks >= self.after:
            self.cancel()
        super().check()


class _CountingEncoder(torch.nn.Module):
    """Lite0, counting the forward passes that build a graph (one per optimisation step)."""

    def __init__(self, inner: Lite0Encoder) -> None:
        super().__init__()
        self.inner = inner
        self.taps = inner.taps
        self.steps = 0

    def forward_features(self, image: torch.Tensor, taps: list[str]) -> dict[str, torch.Tensor]:
        if torch.is_grad_enabled() and image.requires_grad:
            self.steps += 1
        return dict(self.inner.forward_features(image, taps))


@pytest.fixture
def counting(encoder: Lite0Encoder) -> _CountingEncoder:
    return _CountingEncoder(encoder)


@pytest.fixture
def gatys(counting: _CountingEncoder) -> GatysFamily:
    return GatysFamily(GatysConfig(steps=STEPS), counting)  # type: ignore[arg-type]


@pytest.mark.parametrize("after", [1, 3, 8])
def test_gatys_stops_within_a_step_of_the_token_firing(
    gatys: GatysFamily,
    counting: _CountingEncoder,
    astronaut: np.ndarray,
    stripes: np.ndarray,
    after: int,
) -> None:
    token = _FiresAfter(after)
    with pytest.raises(Canceled):
        gatys.stylize(astronaut, [stripes], [1.0], StylizeControls(), cancellation=token)
    # The token is checked before each step: it fired at its `after`-th check, so exactly
    # the steps before it ran, out of the 12 asked for.
    assert token.checks == after
    assert counting.steps == after - 1


def test_gatys_stops_within_a_step_when_canceled_from_another_thread(
    counting: _CountingEncoder, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    family = GatysFamily(GatysConfig(steps=100_000), counting)  # type: ignore[arg-type]
    token = Cancellation()
    raised: list[BaseException] = []

    def run() -> None:
        try:
            family.stylize(astronaut, [stripes], [1.0], StylizeControls(), cancellation=token)
        except BaseException as exc:
            raised.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.monotonic() + 60.0
    while counting.steps < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    at_cancel = counting.steps
    token.cancel()
    worker.join(timeout=60.0)
    assert not worker.is_alive()
    assert len(raised) == 1
    assert isinstance(raised[0], Canceled)
    # The step running when the flag was set finishes; no further one starts.
    assert at_cancel >= 3
    assert counting.steps - at_cancel <= 1


def test_a_token_canceled_before_the_call_runs_no_step(
    gatys: GatysFamily, counting: _CountingEncoder, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    token = Cancellation()
    token.cancel()
    with pytest.raises(Canceled):
        gatys.stylize(astronaut, [stripes], [1.0], StylizeControls(), cancellation=token)
    assert counting.steps == 0


def test_gatys_coarse_to_fine_stops_in_its_refining_pass(
    counting: _CountingEncoder, stripes: np.ndarray
) -> None:
    family = GatysFamily(
        GatysConfig(steps=STEPS, refine_steps=STEPS, coarse_to_fine_threshold=32),
        counting,  # type: ignore[arg-type]
    )
    content = np.random.default_rng(3).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    # All of the coarse pass, then one refinement step, then the token fires.
    token = _FiresAfter(STEPS + 2)
    with pytest.raises(Canceled):
        family.stylize(content, [stripes], [1.0], StylizeControls(), cancellation=token)
    assert counting.steps == STEPS + 1


def test_a_token_that_never_fires_changes_nothing(
    gatys: GatysFamily, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    controls = StylizeControls(seed=5)
    content = astronaut[:40, :40]
    plain = gatys.stylize(content, [stripes], [1.0], controls)
    token = Cancellation()
    watched = gatys.stylize(content, [stripes], [1.0], controls, cancellation=token)
    assert plain.tobytes() == watched.tobytes()


@pytest.mark.parametrize("spec", registry.all_models(), ids=lambda spec: spec.name)
def test_every_model_takes_a_token_and_stops_when_it_fired(spec: ModelSpec) -> None:
    """Every registered family accepts the keyword and refuses to paint once it fired."""
    family = registry.build_family(spec.name)
    content = np.random.default_rng(0).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    style = np.random.default_rng(1).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    keys = trained_style_keys(family)[:1] or None
    fired = Cancellation()
    fired.cancel()
    with pytest.raises(Canceled):
        family.stylize(
            content, [style], [1.0], StylizeControls(), style_keys=keys, cancellation=fired
        )
