"""The wct family: whitening and colouring numerics, the coarse-to-fine pass, the shipped version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gouache.cli.main import main
from gouache.nst import registry
from gouache.nst.artifacts import grid_excess
from gouache.nst.base import StylizeControls
from gouache.nst.encoders import Lite0Encoder, load_lite0
from gouache.nst.encoders.lite0 import file_sha256
from gouache.nst.families.wct import WctConfig, WctDecoders, WctFamily, WctRunners
from gouache.nst.families.wct_transform import (
    covariance,
    mix_colourings,
    style_colouring,
    whiten_colour,
)
from gouache.nst.quality import QualityMeter
from gouache.nst.training.wct import load_wct_config
from tests.unit.nst.images import downscale, sample
from tests.unit.nst.test_grid_artifacts import (
    _PERIOD,
    _SKY,
    GRID_LIMIT,
    _as_the_mesh_serves,
    _night_scene,
)
from tests.unit.nst.test_training import _write_images

VERSION = "wct.lite0-v1"


def _features(seed: int, channels: int = 8, side: int = 24) -> torch.Tensor:
    """Correlated random features: a random mixing of independent channels, plus a mean."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(channels, side * side, generator=generator, dtype=torch.float64)
    mixing = torch.randn(channels, channels, generator=generator, dtype=torch.float64)
    shift = torch.randn(channels, 1, generator=generator, dtype=torch.float64) * 3.0
    return (mixing @ base + shift).reshape(1, channels, side, side)


def test_wct_gives_the_content_the_style_s_mean_and_covariance() -> None:
    content, style = _features(0), _features(1)
    out = whiten_colour(content, style_colouring(style, 1e-6), 1e-6)
    out_mean, out_cov = covariance(out)
    style_mean, style_cov = covariance(style)
    assert torch.allclose(out_mean, style_mean, atol=1e-6)
    assert torch.allclose(out_cov, style_cov, rtol=1e-4, atol=1e-4 * float(style_cov.abs().max()))
    # ...and it is not a copy of the style: the content's arrangement survives.
    assert not torch.allclose(out, style, atol=1e-1)


def test_wct_of_a_flat_image_stays_bounded() -> None:
    """A constant feature map has a zero covariance: the eigenvalue floor keeps it finite."""
    flat = torch.ones(1, 8, 16, 16, dtype=torch.float64)
    out = whiten_colour(flat, style_colouring(_features(1), 1e-4), 1e-4)
    assert torch.isfinite(out).all()
    assert float(out.std(dim=(2, 3)).max()) < 1e-6


def test_mixing_one_style_is_that_style() -> None:
    colouring = style_colouring(_features(2), 1e-6)
    mean, root = mix_colourings([colouring, colouring], [0.25, 0.75])
    assert torch.allclose(mean, colouring[0])
    assert torch.allclose(root, colouring[1])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"levels": ("b1", "b3")}, "deepest first"),
        ({"levels": ("b3",)}, "decoder_widths must name exactly"),
        ({"levels": ("b3",), "decoder_widths": {"b3": (8, 8)}}, "needs 3 positive widths"),
        ({"levels": ("b42",)}, "unknown tap"),
        ({"eps": 0.0}, "eps must be positive"),
        ({"colour": 1}, "unknown WctConfig keys"),
    ],
)
def test_bad_configs_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WctConfig.from_mapping(values)


def test_runners_must_cover_every_level(encoder: Lite0Encoder) -> None:
    config = WctConfig(levels=("b3", "b1"), decoder_widths={"b3": (8, 4, 4), "b1": (4, 4)})
    both = {"b3": torch.nn.Identity(), "b1": torch.nn.Identity()}
    only_b1 = {"b1": torch.nn.Identity()}
    with pytest.raises(ValueError, match=r"no decode runner for levels \['b3'\]"):
        WctFamily(config, encoder, WctDecoders(config), runners=WctRunners(both, only_b1))


def test_random_decoders_keep_every_shape(encoder: Lite0Encoder, chelsea: np.ndarray) -> None:
    """Odd sizes are padded to the deepest stride and cropped back at every level."""
    torch.manual_seed(0)
    family = WctFamily(WctConfig(), encoder, WctDecoders(WctConfig()))
    content = np.ascontiguousarray(chelsea[:61, :83])
    out = family.stylize(content, [chelsea], [1.0], StylizeControls(), style_keys=["a"])
    assert out.shape == content.shape
    assert out.dtype == np.uint8
    assert family.cached_styles() == 1


@pytest.fixture(scope="module")
def shipped() -> WctFamily:
    family = registry.build_family(VERSION)
    assert isinstance(family, WctFamily)
    return family


def test_alpha_zero_reconstructs_the_content(shipped: WctFamily, encoder: Lite0Encoder) -> None:
    """Without style the three decoders only rebuild: close to the content in pixels and features."""
    content = downscale(sample("astronaut"), 256)
    style = downscale(sample("immunohistochemistry"), 256)
    rebuilt = shipped.stylize(content, [style], [1.0], StylizeControls(alpha=0.0))
    painted = shipped.stylize(content, [style], [1.0], StylizeControls(alpha=1.0))
    error = np.abs(rebuilt.astype(np.float64) - content).mean() / 255.0
    assert error < 0.06, f"mean absolute error {error:.3f}"
    meter = QualityMeter(encoder, side=256)
    # The decoder blurs a little (fine texture lost after 30 min of CPU training), which
    # the b8 content distance notices; painting moves much further.
    assert (
        meter.measure(rebuilt, content, style).content
        < meter.measure(painted, content, style).content * 0.75
    )


def test_alpha_one_takes_the_style_s_statistics(shipped: WctFamily) -> None:
    content = downscale(sample("astronaut"), 256)
    style = downscale(sample("immunohistochemistry"), 256)
    painted = shipped.stylize(content, [style], [1.0], StylizeControls())
    # The stained tissue is brown on pale blue: the painted photo's mean colour moves to it.
    to_style = np.abs(painted.mean(axis=(0, 1)) - style.mean(axis=(0, 1))).sum()
    from_content = np.abs(content.mean(axis=(0, 1)) - style.mean(axis=(0, 1))).sum()
    assert to_style < from_content / 2


@pytest.mark.slow
def test_flat_sky_carries_no_block_grid_at_2048_px() -> None:
    """The mesh's way (the catalogue's tile size) on the 2048 px night scene of issue 9."""
    scene = _night_scene()
    reference = grid_excess(scene[_SKY], _PERIOD)
    output = _as_the_mesh_serves(VERSION, scene, sample("immunohistochemistry"))
    measured = grid_excess(output[_SKY], _PERIOD)
    assert measured <= GRID_LIMIT * reference, (
        f"grid excess {measured:.2f} vs the content's {reference:.2f} (limit {GRID_LIMIT}x)"
    )


def test_wct_decoders_train_and_export_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A few reconstruction steps, the export's manifest, and the decoders paint."""
    data = (
        _write_images(tmp_path / "data/content", 4, seed=1),
        _write_images(tmp_path / "data/styles", 3, seed=2),
    )
    config = {
        "name": "wct.test-v0",
        "family": "wct",
        "model": {"levels": ["b3", "b1"], "decoder_widths": {"b3": [8, 8, 8], "b1": [8, 8]}},
        "data": {"image_size": 32, "load_side": 40, "batch_size": 2, "holdout_batches": 1},
        "optim": {"warmup_steps": 1, "max_steps": 3},
        "run": {"eval_every": 2, "checkpoint_every": 2, "log_every": 1, "threads": 1},
    }
    path = tmp_path / "wct.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    command = ["train", "wct", "--content-dir", str(data[0]), "--style-dir", str(data[1])]
    assert main([*command, "--config", str(path), "--out", str(out)]) == 0
    exported = Path(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["exported"])
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["family"] == "wct"
    assert manifest["training"]["steps"] == 3
    assert manifest["data"]["content_train"] + len(manifest["data"]["content_heldout"]) == 4
    digest = manifest["files"]["decoders.pt"]["sha256"]
    assert digest == file_sha256(exported / "decoders.pt")
    state = torch.load(exported / "decoders.pt", weights_only=True)
    assert all(value.dtype == torch.float16 for value in state.values())
    model = load_wct_config(path).model
    decoders = WctDecoders(model)
    decoders.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    image = np.full((40, 36, 3), 128, dtype=np.uint8)
    out_image = WctFamily(model, load_lite0(), decoders).stylize(
        image, [image], [1.0], StylizeControls()
    )
    assert out_image.shape == image.shape
