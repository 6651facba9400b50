"""Golden images: each shipped model paints a fixed small input as it did when last accepted.

Inputs: skimage's chelsea at 64 px long side and a generated stripes style, seed 0,
default controls, one torch thread. Feedforward paints only its trained styles, so it
gets its first trained style through the catalog key (`StyleIndex`), stripes or not.

Tolerances (uint8 levels; CPU float results differ across machines in summation order):
- one-pass families (adain, feedforward): mean |diff| <= 2, max <= 8. Measured here:
  1 vs 2 torch threads, and torch vs ONNX Runtime, differ by at most 1 level.
- gatys: mean <= 3, max <= 96. Forty Adam steps amplify last-bit differences: 1 vs 2
  torch threads differ by mean 2.2 and max 61 levels on this input, while real changes
  are larger (36 instead of 40 steps: mean 4.05; learning rate 0.018 instead of 0.02:
  15.7; tv_weight 20 instead of 30: 14.4; another seed: 47.6).

Regenerate after an intended change (and look at the PNGs before committing them):
    .venv/bin/python -m tests.unit.nst.test_golden --regenerate
or run the tests with GOUACHE_REGENERATE_GOLDEN=1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gouache.nst import registry
from gouache.nst.base import RGBImage, StyleFamily, StylizeControls
from gouache.nst.families.feedforward import FeedforwardFamily
from gouache.nst.specs import ModelSpec
from tests.unit.nst.images import downscale, sample

GOLDEN_DIR = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("GOUACHE_REGENERATE_GOLDEN") == "1"
TOLERANCES: dict[str, tuple[float, int]] = {
    "gatys": (3.0, 96),
    "adain": (2.0, 8),
    "feedforward": (2.0, 8),
    "wct": (2.0, 8),
}
"""Per family: (largest mean absolute difference, largest absolute difference), in levels."""


def golden_models() -> list[ModelSpec]:
    """Every registered model that ships weights, and the fast gatys (v1 is too slow)."""
    return [
        spec
        for spec in registry.all_models()
        if spec.name == "gatys.lite0-fast"
        or (spec.weights and all(w.path().is_file() for w in spec.weights.values()))
    ]


def golden_inputs() -> tuple[RGBImage, RGBImage]:
    """Chelsea at 64x43 and a 48 px red/blue/yellow diagonal-stripe style."""
    content = downscale(sample("chelsea"), 64)
    rows, cols = np.mgrid[0:48, 0:48]
    palette = np.array([[230, 40, 40], [30, 60, 210], [250, 220, 50]], dtype=np.uint8)
    style: RGBImage = palette[((rows + cols) // 6) % 3]
    return content, style


@contextmanager
def _one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def paint(spec: ModelSpec) -> RGBImage:
    """The model's output for the golden inputs."""
    family: StyleFamily = registry.build_family(spec.name)
    content, style = golden_inputs()
    keys = None
    if isinstance(family, FeedforwardFamily):
        keys = [family.trained_styles[0].sha256]
    with _one_thread():
        return family.stylize(content, [style], [1.0], StylizeControls(seed=0), style_keys=keys)


def golden_path(spec: ModelSpec) -> Path:
    return GOLDEN_DIR / f"{spec.name}.png"


def write_golden(spec: ModelSpec) -> Path:
    path = golden_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(paint(spec)).save(path, format="PNG", optimize=True)
    return path


@pytest.mark.parametrize("spec", golden_models(), ids=lambda spec: spec.name)
def test_output_matches_the_golden_image(spec: ModelSpec) -> None:
    if REGENERATE:
        write_golden(spec)
    path = golden_path(spec)
    assert path.is_file(), (
        f"no golden image for {spec.name}; create it with "
        "`python -m tests.unit.nst.test_golden --regenerate` and look at it first"
    )
    expected = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    actual = paint(spec).astype(np.int16)
    assert actual.shape == expected.shape
    difference = np.abs(actual - expected)
    mean_limit, max_limit = TOLERANCES[spec.family]
    assert float(difference.mean()) <= mean_limit, f"mean |diff| {difference.mean():.2f} levels"
    assert int(difference.max()) <= max_limit, f"max |diff| {difference.max()} levels"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the golden images.")
    parser.add_argument("--regenerate", action="store_true", help="write every golden PNG")
    parser.add_argument("models", nargs="*", help="only these models (default: all)")
    args = parser.parse_args(argv)
    if not args.regenerate:
        parser.error("nothing to do without --regenerate")
    for spec in golden_models():
        if not args.models or spec.name in args.models:
            print(write_golden(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
