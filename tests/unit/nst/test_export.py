"""ONNX export and runtime: dynamic height and width, named inputs, parity with torch."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gouache.nst import registry
from gouache.nst.base import StyleFamily, StylizeControls
from gouache.nst.encoders.lite0 import Lite0Encoder, WeightsIntegrityError, file_sha256
from gouache.nst.export import (
    MANIFEST_FILE,
    ONNX_OPSET,
    FamilyExport,
    OnnxSignature,
    adain_export,
    add_manifest_entry,
    export_onnx,
    feedforward_export,
    graph_files,
    graph_signature,
    manifest_file_sha256,
    model_directory,
    wct_exports,
)
from gouache.nst.families.adain import TAP_GEOMETRY, AdainDecoder, AdainTransfer
from gouache.nst.families.feedforward import FeedforwardFamily
from gouache.nst.families.feedforward_network import NetworkShape, TransformNet
from gouache.nst.families.wct import WctConfig, WctDecoders
from gouache.nst.onnx_runtime import (
    OnnxNetwork,
    build_family,
    check_runtime,
    max_abs_difference,
    providers_for,
)
from gouache.nst.specs import ModelSpec

# Outputs are images in [0, 1]; 1e-3 is a quarter of one 8-bit level.
PARITY_TOLERANCE = 1e-3
FULL = StylizeControls()
SIZES = [(48, 64), (37, 91)]


class _ConditionalNet(nn.Module):
    """A small encoder-decoder with instance norm modulated by per-channel inputs."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, channels, 3, stride=2, padding=1)
        self.norm = nn.InstanceNorm2d(channels)
        self.up = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, image: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
        y = self.norm(F.relu(self.down(image)))
        y = y * scale[:, :, None, None] + shift[:, :, None, None]
        y = F.interpolate(y, size=image.shape[-2:], mode="nearest")
        return torch.sigmoid(self.up(y))


SIGNATURE = OnnxSignature(
    inputs=("image", "scale", "shift"),
    outputs=("stylized",),
    spatial={"image": (2, 3), "stylized": (2, 3)},
)


@pytest.fixture(scope="module")
def net() -> _ConditionalNet:
    torch.manual_seed(0)
    return _ConditionalNet().eval()


@pytest.fixture(scope="module")
def exported(net: _ConditionalNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    return export_onnx(net, _inputs(32, 40), path, SIGNATURE)


def _inputs(height: int, width: int, seed: int = 1) -> list[Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.rand(1, 3, height, width, generator=generator),
        torch.rand(1, 8, generator=generator) + 0.5,
        torch.rand(1, 8, generator=generator) - 0.5,
    ]


def test_the_graph_is_valid_with_dynamic_height_and_width(exported: Path) -> None:
    model = onnx.load(str(exported))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= ONNX_OPSET
    assert graph_signature(exported) == SIGNATURE


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_onnx_runtime_matches_torch_at_sizes_it_was_not_traced_at(
    net: _ConditionalNet, exported: Path, height: int, width: int
) -> None:
    network = OnnxNetwork(exported)
    inputs = _inputs(height, width, seed=height)
    assert network(*inputs).shape == (1, 3, height, width)
    assert max_abs_difference(net, network, inputs) <= PARITY_TOLERANCE


def test_named_numpy_inputs_run_and_missing_ones_are_named(exported: Path) -> None:
    network = OnnxNetwork(exported)
    image, scale, shift = (t.numpy() for t in _inputs(24, 24))
    out = network.run({"image": image, "scale": scale, "shift": shift})
    assert out["stylized"].shape == (1, 3, 24, 24)
    with pytest.raises(ValueError, match="shift"):
        network.run({"image": image, "scale": scale})


def test_the_sha256_is_checked_before_loading(exported: Path) -> None:
    assert OnnxNetwork(exported, sha256=file_sha256(exported)).input_names == SIGNATURE.inputs
    with pytest.raises(WeightsIntegrityError, match="expected"):
        OnnxNetwork(exported, sha256="0" * 64)


def test_cuda_is_asked_for_only_when_installed() -> None:
    assert providers_for("cpu") == ["CPUExecutionProvider"]
    assert providers_for("cuda")[-1] == "CPUExecutionProvider"


def test_runtime_names_are_checked() -> None:
    assert check_runtime("onnx") == "onnx"
    with pytest.raises(ValueError, match="torch"):
        check_runtime("tensorrt")


def test_a_failed_export_leaves_no_file_behind(net: _ConditionalNet, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="example inputs"):
        export_onnx(net, _inputs(8, 8)[:2], tmp_path / "model.onnx", SIGNATURE)
    assert list(tmp_path.iterdir()) == []


def test_export_is_deterministic(net: _ConditionalNet, tmp_path: Path) -> None:
    first = export_onnx(net, _inputs(32, 40), tmp_path / "a.onnx", SIGNATURE)
    second = export_onnx(net, _inputs(16, 24), tmp_path / "b.onnx", SIGNATURE)
    assert np.array_equal(
        np.frombuffer(first.read_bytes(), np.uint8), np.frombuffer(second.read_bytes(), np.uint8)
    )


def _tiny_adain() -> AdainTransfer:
    torch.manual_seed(0)
    decoder = AdainDecoder(TAP_GEOMETRY["b3"][0], (8, 8, 4), (1, 1, 1))
    return AdainTransfer(Lite0Encoder().eval(), decoder, tap="b3", eps=1e-5).eval()


def _tiny_feedforward() -> TransformNet:
    torch.manual_seed(0)
    network = TransformNet(NetworkShape(channels=(4, 8), residual_blocks=1, edge_kernel=3), 3)
    with torch.no_grad():
        network.gamma.add_(0.3 * torch.randn_like(network.gamma))
        network.beta.add_(0.3 * torch.randn_like(network.beta))
    return network.eval()


def _adain_inputs(exported: FamilyExport, height: int, width: int) -> list[Tensor]:
    generator = torch.Generator().manual_seed(height * width)
    _, mean, std, _ = exported.example
    return [
        torch.rand(1, 3, height, width, generator=generator),
        mean + 0.1 * torch.randn(mean.shape, generator=generator),
        std * (1.0 + 0.1 * torch.rand(std.shape, generator=generator)),
        torch.tensor(0.7),
    ]


def _feedforward_inputs(exported: FamilyExport, height: int, width: int) -> list[Tensor]:
    generator = torch.Generator().manual_seed(height * width)
    module = exported.module
    assert isinstance(module, TransformNet)
    mix = torch.tensor([[0.2, 0.5, 0.3]])
    return [torch.rand(1, 3, height, width, generator=generator), module.slot_params(mix)]


ARCHITECTURES: dict[
    str, tuple[Callable[[], FamilyExport], Callable[[FamilyExport, int, int], list[Tensor]]]
] = {
    "adain": (lambda: adain_export(_tiny_adain()), _adain_inputs),
    "feedforward": (lambda: feedforward_export(_tiny_feedforward()), _feedforward_inputs),
}
# Both networks need sides that are multiples of 4 (AdaIN's b3 stride; two stride-2 levels).
FAMILY_SIZES = [(48, 64), (36, 92)]


@pytest.mark.parametrize("family", sorted(ARCHITECTURES))
def test_each_family_architecture_exports_with_parity(family: str, tmp_path: Path) -> None:
    make, inputs_for = ARCHITECTURES[family]
    exported = make()
    path = export_onnx(
        exported.module, exported.example, tmp_path / "model.onnx", exported.signature
    )
    network = OnnxNetwork(path)
    assert network.input_names == exported.signature.inputs
    for height, width in FAMILY_SIZES:
        inputs = inputs_for(exported, height, width)
        with torch.no_grad():
            expected = exported.module(*inputs).clamp(0.0, 1.0)
        actual = network(*inputs).clamp(0.0, 1.0)
        assert actual.shape == (1, 3, height, width)
        assert float((expected - actual).abs().max()) <= PARITY_TOLERANCE


def test_wct_exports_an_encode_and_a_decode_graph_per_level_with_parity(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = WctConfig(levels=("b3", "b1"), decoder_widths={"b3": (8, 4, 4), "b1": (4, 4)})
    encoder = Lite0Encoder().eval()
    exports = wct_exports(encoder, WctDecoders(config).eval(), config.levels)
    assert sorted(exports) == [
        "decode.b1.onnx",
        "decode.b3.onnx",
        "encode.b1.onnx",
        "encode.b3.onnx",
    ]
    for file, exported in exports.items():
        path = export_onnx(exported.module, exported.example, tmp_path / file, exported.signature)
        network = OnnxNetwork(path)
        for height, width in FAMILY_SIZES:
            stride = TAP_GEOMETRY[file.split(".")[1]][1]
            image = torch.rand(1, 3, height, width)
            if file.startswith("encode"):
                inputs = [image]
            else:
                with torch.no_grad():
                    inputs = [exports[file.replace("decode", "encode")].module(image)]
            with torch.no_grad():
                expected = exported.module(*inputs)
            actual = network(*inputs)
            assert actual.shape == expected.shape
            if file.startswith("decode"):
                assert actual.shape == (1, 3, height // stride * stride, width // stride * stride)
            assert float((expected - actual).abs().max()) <= PARITY_TOLERANCE


def test_gatys_has_no_onnx_form() -> None:
    with pytest.raises(ValueError, match="no ONNX runtime"):
        build_family("gatys.lite0-fast", runtime="onnx")


@pytest.mark.parametrize("form", ["digest", "table"])
def test_manifest_entries_keep_the_manifest_form(form: str, tmp_path: Path) -> None:
    other: object = "a" * 64 if form == "digest" else {"sha256": "a" * 64, "bytes": 3}
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps({"files": {"net.pt": other}, "name": "m"}, indent=2, sort_keys=True) + "\n"
    )
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"graph")
    add_manifest_entry(manifest, graph)
    written = json.loads(manifest.read_text())
    assert written["files"]["net.pt"] == other
    assert written["name"] == "m"
    assert manifest_file_sha256(manifest, "model.onnx") == file_sha256(graph)
    entry = written["files"]["model.onnx"]
    assert isinstance(entry, dict) == (form == "table")


def test_a_hand_edited_manifest_is_not_rewritten(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"files": {}, "name": "m"}')
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"graph")
    with pytest.raises(ValueError, match="canonical"):
        add_manifest_entry(manifest, graph)
    assert manifest.read_text() == '{"files": {}, "name": "m"}'


SHIPPED = [
    spec
    for spec in registry.all_models()
    if graph_files(spec)
    and all((model_directory(spec) / file).is_file() for file in graph_files(spec))
]


def test_every_one_pass_model_shipped_in_the_package_has_its_graphs() -> None:
    shipped = {spec.name for spec in SHIPPED}
    assert {"adain.lite0-v1", "feedforward.lite0-v1", "wct.lite0-v1"} <= shipped


@pytest.mark.parametrize("spec", SHIPPED, ids=lambda spec: spec.name)
def test_shipped_graphs_match_their_torch_models(
    spec: ModelSpec, chelsea: np.ndarray, stripes: np.ndarray
) -> None:
    directory = model_directory(spec)
    for file in graph_files(spec):
        assert manifest_file_sha256(directory / MANIFEST_FILE, file) == file_sha256(
            directory / file
        )
    torch_family = build_family(spec.name, runtime="torch")
    onnx_family = build_family(spec.name, runtime="onnx")
    keys = _style_keys(torch_family)
    for content in (chelsea, np.ascontiguousarray(chelsea[:51, :77])):
        expected = torch_family.stylize(content, [stripes], [1.0], FULL, style_keys=keys)
        actual = onnx_family.stylize(content, [stripes], [1.0], FULL, style_keys=keys)
        # uint8 outputs: float differences far below PARITY_TOLERANCE can flip a rounding.
        assert np.abs(expected.astype(int) - actual.astype(int)).max() <= 1


def _style_keys(family: StyleFamily) -> list[str] | None:
    """Feedforward paints only its trained styles; its catalog key selects the first."""
    if isinstance(family, FeedforwardFamily):
        return [family.trained_styles[0].sha256]
    return None
