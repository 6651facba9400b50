"""VGG19 features from an operator's torchvision-layout state dict, and gatys over them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gouache.nst import registry
from gouache.nst.base import StylizeControls
from gouache.nst.encoders import VGG19_TAPS, Vgg19Encoder, WeightsIntegrityError, load_vgg19
from gouache.nst.encoders.lite0 import file_sha256
from gouache.nst.families.gatys import GatysConfig, GatysFamily
from gouache.nst.registry import GATYS_VGG19_V1, VGG19_WEIGHTS_ENV, ModelRegistry, ModelSpec

# torchvision.models.vgg19().features: the indices of its 16 convolutions.
TORCHVISION_CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    encoder = Vgg19Encoder()
    # Half precision keeps the test file at 40 MB; loading casts into the float32 module.
    return {key: value.half() for key, value in encoder.state_dict().items()}


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vgg19") / "vgg19.pth"
    state = _state()
    state["classifier.6.bias"] = torch.zeros(1000)  # torchvision's head: ignored
    torch.save(state, path)
    return path


def test_the_layout_is_torchvisions() -> None:
    keys = set(Vgg19Encoder().state_dict())
    assert keys == {f"features.{i}.{p}" for i in TORCHVISION_CONVS for p in ("weight", "bias")}
    assert VGG19_TAPS[:2] == ("relu1_1", "relu1_2")
    assert VGG19_TAPS[-1] == "relu5_4"
    assert len(VGG19_TAPS) == 16


def test_loads_strictly_and_returns_named_activations(weights_file: Path) -> None:
    encoder = load_vgg19(weights_file, sha256=file_sha256(weights_file))
    saved = torch.load(weights_file, weights_only=True)
    assert torch.equal(
        encoder.state_dict()["features.21.weight"], saved["features.21.weight"].float()
    )
    assert not any(p.requires_grad for p in encoder.parameters())
    image = torch.rand(1, 3, 64, 48)
    found = encoder.forward_features(image, ["relu1_1", "relu2_1", "relu4_2", "relu5_1"])
    assert {k: tuple(v.shape) for k, v in found.items()} == {
        "relu1_1": (1, 64, 64, 48),
        "relu2_1": (1, 128, 32, 24),
        "relu4_2": (1, 512, 8, 6),
        "relu5_1": (1, 512, 4, 3),
    }
    assert all(bool((v >= 0).all()) for v in found.values())  # after ReLU


def test_a_bare_features_state_dict_loads_too(tmp_path: Path) -> None:
    path = tmp_path / "features.pt"
    torch.save({key.removeprefix("features."): v for key, v in _state(1).items()}, path)
    assert isinstance(load_vgg19(path), Vgg19Encoder)


def test_unknown_taps_are_refused() -> None:
    with pytest.raises(ValueError, match="known taps: relu1_1"):
        Vgg19Encoder().forward_features(torch.rand(1, 3, 16, 16), ["b8"])


def test_a_wrong_file_is_refused_with_what_is_wrong(tmp_path: Path, weights_file: Path) -> None:
    with pytest.raises(WeightsIntegrityError, match="does not exist"):
        load_vgg19(tmp_path / "absent.pth")
    with pytest.raises(WeightsIntegrityError, match=f"expected {'0' * 64}"):
        load_vgg19(weights_file, sha256="0" * 64)
    partial = tmp_path / "partial.pth"
    state = _state()
    del state["features.34.weight"]
    torch.save(state, partial)
    with pytest.raises(WeightsIntegrityError, match=r"missing \['features.34.weight'\]"):
        load_vgg19(partial)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsIntegrityError, match="not a loadable state dict"):
        load_vgg19(garbage)


def _vgg_config(**overrides: object) -> GatysConfig:
    values: dict[str, object] = {
        "style_taps": {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0},
        "content_tap": "relu3_1",
        "steps": 3,
        "refine_steps": 0,
    }
    values.update(overrides)
    return GatysConfig.from_mapping(values)


def test_gatys_optimises_against_vgg19_features(weights_file: Path) -> None:
    family = GatysFamily(_vgg_config(), load_vgg19(weights_file))
    rng = np.random.default_rng(0)
    content = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    style = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    out = family.stylize(content, [style], [1.0], StylizeControls(seed=3))
    assert out.shape == content.shape
    assert not np.array_equal(out, content)


def test_gatys_refuses_taps_its_encoder_lacks(weights_file: Path) -> None:
    with pytest.raises(ValueError, match="unknown taps"):
        GatysFamily(GatysConfig(), load_vgg19(weights_file))  # Lite0's default taps


def test_the_vgg19_model_builds_from_the_operators_file(
    weights_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = ModelRegistry()
    models.register(GATYS_VGG19_V1)
    monkeypatch.delenv(VGG19_WEIGHTS_ENV, raising=False)
    with pytest.raises(WeightsIntegrityError, match=VGG19_WEIGHTS_ENV):
        models.build(GATYS_VGG19_V1.name)
    monkeypatch.setenv(VGG19_WEIGHTS_ENV, str(weights_file))
    family = models.build(GATYS_VGG19_V1.name)
    assert family.name == "gatys"


def test_only_gatys_can_use_vgg19() -> None:
    adain_spec = registry.get("adain.lite0-v1")
    fields = {k: getattr(adain_spec, k) for k in ModelSpec.__dataclass_fields__}
    with pytest.raises(ValueError, match="trained on Lite0 features"):
        ModelRegistry().register(ModelSpec(**{**fields, "name": "adain.vgg19", "encoder": "vgg19"}))
    lite0_taps = {k: v for k, v in GATYS_VGG19_V1.__dict__.items()}
    with pytest.raises(ValueError, match="unknown taps"):
        ModelRegistry().register(
            ModelSpec(**{**lite0_taps, "name": "gatys.vgg19-bad", "config": {"content_tap": "b8"}})
        )
