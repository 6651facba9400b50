"""AdaIN family: the statistics maths, every control, sizes, caching and the shipped decoder."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gouache.imaging.color import rgb_to_ycbcr, to_float32
from gouache.nst import registry
from gouache.nst.base import StylizeControls
from gouache.nst.encoders import LITE0_TAPS, Lite0Encoder, WeightsIntegrityError
from gouache.nst.encoders.lite0 import file_sha256
from gouache.nst.families.adain import (
    TAP_GEOMETRY,
    AdainConfig,
    AdainDecoder,
    AdainFamily,
    AdainTransfer,
    adain,
    feature_statistics,
    load_decoder,
    mix_statistics,
    smooth,
)
from gouache.nst.losses import tv_loss
from gouache.nst.specs import ModelWeights
from tests.unit.nst.images import downscale, sample
from tests.unit.nst.metrics import style_distance

MODEL = "adain.lite0-v1"
FULL = StylizeControls()


@pytest.fixture(scope="module")
def family(encoder: Lite0Encoder) -> AdainFamily:
    """The shipped model, measuring styles at the scale of these small test contents.

    In service, styles are measured at a 512 px long side to match 512 px tiles; the
    64 px test styles would be blown up eightfold against 80 px contents.
    """
    spec = registry.get(MODEL)
    config = dataclasses.replace(AdainConfig.from_mapping(spec.config), style_side=96)
    return AdainFamily(config, encoder, load_decoder(spec), model_version=MODEL)


@pytest.fixture(scope="module")
def hubble() -> np.ndarray:
    """A real style with a palette far from the photos': the Hubble deep field, 96 px.

    The 3-colour stripes and the checkerboard are too degenerate for these checks:
    histogram matching maps their three (two) values to quantile extremes, and a
    one-pass method moves their Gram statistics little.
    """
    return downscale(sample("hubble_deep_field"), 96)


@pytest.fixture(scope="module")
def stain() -> np.ndarray:
    """A second real style: the immunohistochemistry sample (brown and blue stains), 96 px."""
    return downscale(sample("immunohistochemistry"), 96)


def _pixels(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(to_float32(image)).permute(2, 0, 1)[None]


# --- the statistics maths -------------------------------------------------------------


def test_adain_output_has_the_style_statistics() -> None:
    generator = torch.Generator().manual_seed(0)
    content = torch.randn(2, 8, 9, 7, generator=generator) * 3.0 + 1.0
    style = torch.randn(2, 8, 5, 6, generator=generator) * 0.5 - 2.0
    style_mean, style_std = feature_statistics(style, 1e-5)
    out_mean, out_std = feature_statistics(adain(content, style_mean, style_std, 1e-5), 1e-5)
    torch.testing.assert_close(out_mean, style_mean, atol=1e-5, rtol=0.0)
    # eps enters both normalisations, so the std matches to about eps / var, not exactly.
    torch.testing.assert_close(out_std, style_std, atol=1e-4, rtol=1e-4)


def test_feature_statistics_are_population_mean_and_std() -> None:
    features = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]]])
    mean, std = feature_statistics(features, 0.0 + 1e-12)
    assert float(mean) == pytest.approx(4.0)
    assert float(std) == pytest.approx(float(np.std([1.0, 3.0, 5.0, 7.0])))


def test_flat_features_stay_finite() -> None:
    flat = torch.full((1, 4, 3, 3), 2.0)
    out = adain(flat, torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1), 1e-5)
    assert torch.isfinite(out).all()


def test_mixing_weights_the_means_and_the_stds() -> None:
    first = (torch.full((1, 3, 1, 1), 1.0), torch.full((1, 3, 1, 1), 2.0))
    second = (torch.full((1, 3, 1, 1), 5.0), torch.full((1, 3, 1, 1), 4.0))
    mean, std = mix_statistics([first, second], [0.25, 0.75])
    torch.testing.assert_close(mean, torch.full((1, 3, 1, 1), 4.0))
    torch.testing.assert_close(std, torch.full((1, 3, 1, 1), 3.5))


def test_mixing_needs_one_weight_per_style() -> None:
    stats = (torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1))
    with pytest.raises(ValueError, match="weights"):
        mix_statistics([stats], [0.5, 0.5])


def test_tap_geometry_matches_the_encoder(encoder: Lite0Encoder) -> None:
    with torch.no_grad():
        features = encoder.forward_features(torch.rand(1, 3, 64, 64), LITE0_TAPS)
    for tap, (channels, stride) in TAP_GEOMETRY.items():
        assert tuple(features[tap].shape[1:]) == (channels, 64 // stride, 64 // stride), tap


def test_the_decoder_restores_the_tap_stride() -> None:
    config = AdainConfig(tap="b8", decoder_widths=(8, 8, 8, 8, 8), decoder_convs=(1, 1, 1, 1, 1))
    decoder = AdainDecoder.from_config(config)
    assert decoder(torch.rand(1, 80, 3, 5)).shape == (1, 3, 48, 80)


def test_alpha_zero_feeds_the_content_features_to_the_decoder_unchanged(
    encoder: Lite0Encoder, astronaut: np.ndarray
) -> None:
    seen: list[torch.Tensor] = []

    class Spy(AdainDecoder):
        def forward(self, features: torch.Tensor) -> torch.Tensor:
            seen.append(features.clone())
            return super().forward(features)

    config = AdainConfig()
    network = AdainTransfer(encoder, Spy.from_config(config), tap=config.tap, eps=config.eps)
    image = _pixels(astronaut)
    channels = TAP_GEOMETRY[config.tap][0]
    with torch.no_grad():
        network(
            image, torch.zeros(1, channels, 1, 1), torch.ones(1, channels, 1, 1), torch.tensor(0.0)
        )
        expected = encoder.forward_features(image, (config.tap,))[config.tap]
    assert torch.equal(seen[0], expected)


# --- the family through the shipped decoder ------------------------------------------


def test_alpha_zero_approximately_reconstructs_the_content(
    family: AdainFamily, chelsea: np.ndarray, stripes: np.ndarray
) -> None:
    # Through the decoder alpha 0 is a reconstruction, not a copy. Measured with the
    # shipped decoder, mean absolute error (of 1): 0.045 (PSNR 24.5 dB) on this 96 px
    # chelsea, 0.039 on astronaut at 512 px, 0.081 on astronaut at 80 px, whose detail
    # is finer than the decoder can restore; full strength moves it by about 0.12.
    out = family.stylize(chelsea, [stripes], [1.0], StylizeControls(alpha=0.0))
    stylized = family.stylize(chelsea, [stripes], [1.0], FULL)
    error = np.abs(to_float32(out) - to_float32(chelsea)).mean()
    assert error < 0.06
    assert error < 0.5 * np.abs(to_float32(stylized) - to_float32(chelsea)).mean()


@pytest.mark.parametrize("style_name", ["hubble", "stain"])
def test_stylized_output_is_closer_to_the_style(
    family: AdainFamily,
    encoder: Lite0Encoder,
    astronaut: np.ndarray,
    style_name: str,
    request: pytest.FixtureRequest,
) -> None:
    # Measured: 0.57x (hubble) and 0.69x (stain) of the content's own distance.
    style = request.getfixturevalue(style_name)
    out = family.stylize(astronaut, [style], [1.0], FULL)
    assert style_distance(encoder, out, style) < 0.8 * style_distance(encoder, astronaut, style)


def test_lower_alpha_is_less_stylized(
    family: AdainFamily, encoder: Lite0Encoder, astronaut: np.ndarray, hubble: np.ndarray
) -> None:
    outputs = [
        family.stylize(astronaut, [hubble], [1.0], StylizeControls(alpha=alpha))
        for alpha in (0.0, 0.5, 1.0)
    ]
    distances = [style_distance(encoder, image, hubble) for image in outputs]
    assert distances[0] > distances[1] > distances[2]


def test_moving_weight_towards_a_style_brings_the_output_closer_to_it(
    family: AdainFamily,
    encoder: Lite0Encoder,
    chelsea: np.ndarray,
    hubble: np.ndarray,
    stain: np.ndarray,
) -> None:
    outputs = [
        family.stylize(chelsea, [hubble, stain], [w, 1.0 - w], FULL) for w in (0.1, 0.5, 0.9)
    ]
    to_hubble = [style_distance(encoder, image, hubble) for image in outputs]
    to_stain = [style_distance(encoder, image, stain) for image in outputs]
    assert to_hubble[0] > to_hubble[1] > to_hubble[2]
    assert to_stain[0] < to_stain[1] < to_stain[2]


def test_a_style_with_weight_zero_does_not_count(
    family: AdainFamily, chelsea: np.ndarray, stripes: np.ndarray, checker: np.ndarray
) -> None:
    alone = family.stylize(chelsea, [stripes], [1.0], FULL)
    mixed = family.stylize(chelsea, [stripes, checker], [2.0, 0.0], FULL)
    assert np.abs(alone.astype(int) - mixed.astype(int)).max() <= 1


def test_same_seed_gives_identical_bytes(
    family: AdainFamily, chelsea: np.ndarray, stripes: np.ndarray, checker: np.ndarray
) -> None:
    controls = StylizeControls(seed=7, alpha=0.8)
    first = family.stylize(chelsea, [stripes, checker], [0.3, 0.7], controls)
    second = family.stylize(chelsea, [stripes, checker], [0.3, 0.7], controls)
    assert first.tobytes() == second.tobytes()


def test_the_seed_has_nothing_to_drive(
    family: AdainFamily, chelsea: np.ndarray, stripes: np.ndarray
) -> None:
    first = family.stylize(chelsea, [stripes], [1.0], StylizeControls(seed=1))
    second = family.stylize(chelsea, [stripes], [1.0], StylizeControls(seed=2))
    assert first.tobytes() == second.tobytes()


@pytest.mark.parametrize(("height", "width"), [(67, 45), (33, 71), (1, 5), (9, 80), (80, 64)])
def test_output_has_the_content_shape(
    family: AdainFamily, astronaut: np.ndarray, checker: np.ndarray, height: int, width: int
) -> None:
    content = np.ascontiguousarray(astronaut[:height, :width])
    out = family.stylize(content, [checker], [1.0], FULL)
    assert out.shape == content.shape
    assert out.dtype == np.uint8


def test_padding_to_the_stride_does_not_shift_the_picture(
    family: AdainFamily, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    # 80x80 needs no padding; its 75x77 corner, padded and cropped, must line up with it.
    whole = family.stylize(astronaut, [stripes], [1.0], FULL).astype(float)
    corner = family.stylize(
        np.ascontiguousarray(astronaut[:75, :77]), [stripes], [1.0], FULL
    ).astype(float)
    inner = (slice(8, 64), slice(8, 64))
    assert np.abs(whole[inner] - corner[inner]).mean() < 8.0


def test_luminance_only_keeps_the_content_chroma(
    family: AdainFamily, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    content_chroma = rgb_to_ycbcr(to_float32(astronaut))[:, :, 1:]

    def chroma_error(controls: StylizeControls) -> float:
        out = family.stylize(astronaut, [stripes], [1.0], controls)
        return float(np.abs(rgb_to_ycbcr(to_float32(out))[:, :, 1:] - content_chroma).mean())

    kept = chroma_error(StylizeControls(luminance_only=True))
    assert kept < 0.01
    assert kept < 0.25 * chroma_error(FULL)


def test_histogram_match_keeps_the_content_palette(
    family: AdainFamily, chelsea: np.ndarray, hubble: np.ndarray
) -> None:
    content_mean = to_float32(chelsea).mean(axis=(0, 1))

    def palette_error(controls: StylizeControls) -> float:
        out = family.stylize(chelsea, [hubble], [1.0], controls)
        return float(np.abs(to_float32(out).mean(axis=(0, 1)) - content_mean).sum())

    assert palette_error(StylizeControls(histogram_match=True)) < palette_error(FULL)


def test_higher_tv_weight_gives_a_smoother_image(
    family: AdainFamily, astronaut: np.ndarray, checker: np.ndarray
) -> None:
    def roughness(tv_weight: float) -> float:
        out = family.stylize(astronaut, [checker], [1.0], StylizeControls(tv_weight=tv_weight))
        return float(tv_loss(_pixels(out)))

    assert roughness(4.0) < roughness(1.0) < roughness(0.0)


def test_smooth_solves_its_quadratic_problem() -> None:
    image = torch.rand(1, 3, 13, 17, generator=torch.Generator().manual_seed(3)).double()
    weight = 2.5
    solution = smooth(image, weight).requires_grad_(True)
    objective = torch.sum((solution - image) ** 2) + weight * (
        torch.sum(solution.diff(dim=2) ** 2) + torch.sum(solution.diff(dim=3) ** 2)
    )
    (gradient,) = torch.autograd.grad(objective, solution)
    assert float(gradient.abs().max()) < 1e-9
    assert torch.equal(smooth(image, 0.0), image)


def test_style_keys_reuse_cached_statistics(
    family: AdainFamily, chelsea: np.ndarray, stripes: np.ndarray, checker: np.ndarray
) -> None:
    first = family.stylize(chelsea, [stripes], [1.0], FULL, style_keys=["adain-test-a"])
    # Same key, different pixels: the cached statistics of the first call must be used.
    again = family.stylize(chelsea, [checker], [1.0], FULL, style_keys=["adain-test-a"])
    fresh = family.stylize(chelsea, [checker], [1.0], FULL, style_keys=["adain-test-b"])
    assert again.tobytes() == first.tobytes()
    assert fresh.tobytes() != first.tobytes()


def test_style_cache_is_bounded(
    encoder: Lite0Encoder, chelsea: np.ndarray, stripes: np.ndarray
) -> None:
    spec = registry.get(MODEL)
    config = dataclasses.replace(AdainConfig.from_mapping(spec.config), style_cache_size=2)
    small = AdainFamily(config, encoder, load_decoder(spec))
    for key in ("a", "b", "c"):
        small.stylize(chelsea[:16, :16], [stripes], [1.0], FULL, style_keys=[key])
    assert small.cached_styles() == 2


def test_the_family_leaves_a_shared_encoder_as_it_was(
    encoder: Lite0Encoder, family: AdainFamily
) -> None:
    assert family.network.encoder is not encoder
    assert all(p.is_contiguous() for p in encoder.parameters())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tap": "b99"}, "unknown tap"),
        ({"decoder_widths": (8, 8)}, "needs 3 levels"),
        ({"decoder_convs": (1, 0, 1)}, "at least 1"),
        ({"eps": 0.0}, "eps"),
        ({"colour": 1}, "unknown AdainConfig keys"),
    ],
)
def test_bad_configs_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AdainConfig.from_mapping(values)


# --- the shipped weights --------------------------------------------------------------


ADAIN_SPECS = [spec for spec in registry.all_models() if spec.family == "adain"]


@pytest.mark.parametrize("spec", ADAIN_SPECS, ids=lambda spec: spec.name)
def test_every_adain_state_dict_round_trips_strictly(spec: registry.ModelSpec) -> None:
    config = AdainConfig.from_mapping(spec.config)
    decoder = load_decoder(spec)
    fresh = AdainDecoder.from_config(config)
    fresh.load_state_dict(decoder.state_dict(), strict=True)
    features = torch.rand(1, TAP_GEOMETRY[config.tap][0], 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(features), decoder(features))


def test_the_model_is_registered_with_its_tile_size() -> None:
    spec = registry.get(MODEL)
    assert spec.family == "adain"
    assert spec.tile_size == 512
    assert set(spec.weights) == {"decoder"}


def test_the_shipped_decoder_matches_its_sha256_and_manifest() -> None:
    weights = registry.get(MODEL).weights["decoder"]
    path = weights.verified_path()
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest["family"] == "adain"
    assert manifest["files"][path.name]["sha256"] == weights.sha256 == file_sha256(path)
    assert manifest["tap"] == registry.get(MODEL).config["tap"]
    assert path.stat().st_size < 4 * 2**20


def test_a_tampered_decoder_is_refused(tmp_path: Path) -> None:
    weights = registry.get(MODEL).weights["decoder"]
    copy = tmp_path / "decoder.pt"
    data = bytearray(weights.path().read_bytes())
    data[-100] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="sha256"):
        weights.load_state_dict(copy)


def test_a_missing_weights_file_is_refused() -> None:
    missing = ModelWeights(path_in_package="weights/nowhere/decoder.pt", sha256="0" * 64)
    with pytest.raises(WeightsIntegrityError, match="missing"):
        missing.verified_path()


@pytest.mark.parametrize(
    ("path", "sha256"),
    [("weights/x.pt", "abc"), ("/abs/x.pt", "0" * 64), ("../x.pt", "0" * 64)],
)
def test_weights_objects_check_their_fields(path: str, sha256: str) -> None:
    with pytest.raises(ValueError, match=r"sha256|relative"):
        ModelWeights(path_in_package=path, sha256=sha256)
