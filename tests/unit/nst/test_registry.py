"""Model registry: every registered model builds and stylizes; names are unique and helpful."""

from __future__ import annotations

import numpy as np
import pytest

from gouache.nst import registry
from gouache.nst.base import StylizeControls, trained_style_keys
from gouache.nst.families.gatys import GatysConfig
from gouache.nst.registry import DEFAULT, ModelRegistry, ModelSpec, ModelWeights

ALL = registry.all_models()


def _spec(**overrides: object) -> ModelSpec:
    values: dict[str, object] = {
        "name": "gatys.test",
        "family": "gatys",
        "encoder": "lite0",
        "tile_size": 128,
        "description": "a test entry",
        "config": {"steps": 2},
    }
    values.update(overrides)
    return ModelSpec(**values)  # type: ignore[arg-type]


def test_the_default_and_the_fast_model_are_registered() -> None:
    names = {spec.name for spec in ALL}
    assert {DEFAULT, "gatys.lite0-fast", "adain.lite0-v1"} <= names
    # The default takes the whole image in one call (one set of statistics, no mosaic).
    assert registry.get(DEFAULT).tile_size == 2048


def test_gatys_v1_pins_the_measured_defaults() -> None:
    assert GatysConfig.from_mapping(registry.get("gatys.lite0-v1").config) == GatysConfig()


def test_the_default_is_the_fast_arbitrary_style_model() -> None:
    # One pass, any style image: wct.lite0-v1 since it beat adain on both judges (issue 9).
    assert registry.get(DEFAULT).family == "wct"


@pytest.mark.parametrize("spec", ALL, ids=lambda spec: spec.name)
def test_every_model_builds_and_stylizes(spec: ModelSpec) -> None:
    family = registry.build_family(spec.name)
    assert family.name == spec.family
    content = np.random.default_rng(0).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    style = np.random.default_rng(1).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    keys = trained_style_keys(family)[:1] or None
    out = family.stylize(content, [style], [1.0], StylizeControls(), style_keys=keys)
    assert out.shape == content.shape
    assert out.dtype == np.uint8


PAINTS_TILES_SMALLER = frozenset({"adain.lite0-v1.1", "wct.lite0-v1"})
"""Versions that take the whole image in one tile but run their network at a smaller size
on purpose (adain.lite0-v1.1 and wct.lite0-v1: one set of content statistics for the whole
image, no block mosaic at 2048 px); every other version paints a
tile at its full resolution."""


@pytest.mark.parametrize("spec", ALL, ids=lambda spec: spec.name)
def test_every_config_is_a_valid_family_config(spec: ModelSpec) -> None:
    config = registry.family(spec.family).check(spec)
    if spec.name in PAINTS_TILES_SMALLER:
        assert getattr(config, "max_side") < spec.tile_size  # noqa: B009
        return
    assert getattr(config, "max_side") >= spec.tile_size  # noqa: B009 - configs differ by family


WEIGHTS = [(spec, role) for spec in ALL for role in spec.weights]


@pytest.mark.parametrize(
    ("spec", "role"), WEIGHTS, ids=[f"{spec.name}:{role}" for spec, role in WEIGHTS]
)
def test_every_weights_file_is_shipped_and_matches_its_sha256(spec: ModelSpec, role: str) -> None:
    weights = spec.weights[role]
    assert weights.verified_path() == weights.path()
    assert weights.path().stat().st_size < 8 * 2**20


@pytest.mark.parametrize("spec", ALL, ids=lambda spec: spec.name)
def test_specs_are_immutable(spec: ModelSpec) -> None:
    with pytest.raises(TypeError):
        spec.config["steps"] = 1  # type: ignore[index]


def test_duplicate_names_are_refused() -> None:
    models = ModelRegistry()
    models.register(_spec())
    with pytest.raises(ValueError, match="already registered"):
        models.register(_spec(description="another"))


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"gatys\.lite0-fast"):
        registry.get("adain.nope")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"family": "dreams"}, "unknown family"),
        ({"encoder": "vgg99"}, "unknown encoder"),
        ({"tile_size": 0}, "tile_size"),
        ({"config": {"stepz": 3}}, "unknown GatysConfig keys"),
        ({"config": {"content_tap": "b42"}}, "unknown taps"),
    ],
)
def test_broken_specs_are_refused_at_registration(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ModelRegistry().register(_spec(**overrides))


def test_a_family_registers_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        ModelRegistry().register_family(registry.family("gatys"))


def test_unknown_family_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="adain"):
        registry.family("dreams")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"family": "adain", "config": {}}, "exactly one weights file"),
        ({"family": "adain", "config": {"tap": "b5", "decoder_widths": [8]}}, "weights"),
        (
            {"weights": {"decoder": ModelWeights(path_in_package="w/x.pt", sha256="0" * 64)}},
            "gatys loads no weights",
        ),
    ],
)
def test_families_check_the_weights_their_specs_declare(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ModelRegistry().register(_spec(**overrides))
