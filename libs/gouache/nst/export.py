"""Export a family's feed-forward network to ONNX, with dynamic height and width, and check it."""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import Tensor, nn

from gouache.nst.base import StyleFamily
from gouache.nst.encoders.lite0 import Lite0Encoder, WeightsIntegrityError, file_sha256
from gouache.nst.families.adain import AdainFamily, AdainTransfer
from gouache.nst.families.feedforward import FeedforwardFamily
from gouache.nst.families.feedforward_network import TransformNet
from gouache.nst.families.wct import WctConfig, WctDecoders, WctFamily
from gouache.nst.specs import ModelSpec

ONNX_OPSET = 17
"""The opset every exported graph targets (InstanceNormalization, Resize and LayerNorm)."""


@dataclass(frozen=True)
class OnnxSignature:
    """How a network's forward maps to graph inputs and outputs.

    `inputs` names the forward's positional arguments in order, `outputs` its returned
    tensors; `spatial` gives, for each input or output whose height and width vary,
    the indices of those two axes (e.g. (2, 3) for NCHW). Every other axis is fixed at
    the example's size, so, for instance, the batch of one and the channel counts are
    baked in.
    """

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    spatial: Mapping[str, tuple[int, int]]

    def __post_init__(self) -> None:
        names = [*self.inputs, *self.outputs]
        if len(set(names)) != len(names):
            raise ValueError(f"input and output names must be unique, got {names}")
        unknown = set(self.spatial).difference(names)
        if unknown:
            raise ValueError(f"spatial axes given for unknown tensors {sorted(unknown)}")

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """The exporter's dynamic-axes map: each spatial axis gets a symbolic name."""
        return {
            name: {height: f"{name}_height", width: f"{name}_width"}
            for name, (height, width) in self.spatial.items()
        }


def export_onnx(
    module: nn.Module,
    example: Sequence[Tensor],
    path: Path,
    signature: OnnxSignature,
    *,
    opset: int = ONNX_OPSET,
) -> Path:
    """Traces `module` on `example` and writes a checked ONNX graph to `path`, atomically.

    The module is exported in eval mode on the CPU, with its parameters stored inside the
    file (no external data), constants folded, and the spatial axes of `signature`
    dynamic, so one file serves every tile and image size. The trace runs with the
    example's shapes: code paths chosen from the data (not from shapes) are frozen, which
    is why only the pure network is exported and the families keep their control flow
    (colour controls, mixing, resizing) in Python. The written graph is validated with
    `onnx.checker` (full check, shapes inferred) before it replaces `path`.
    """
    if opset < ONNX_OPSET:
        raise ValueError(f"opset must be at least {ONNX_OPSET}, got {opset}")
    if len(example) != len(signature.inputs):
        raise ValueError(
            f"got {len(example)} example inputs for {len(signature.inputs)} input names"
        )
    was_training = module.training
    module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(handle)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch 2.15's default exporter needs onnxscript, which the ml extra does not
            # ship; the TorchScript exporter is deprecated but complete for these graphs.
            # Its tracer warnings are about shapes read in Python, which the parity test
            # covers at two sizes.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit._trace.TracerWarning)
            warnings.filterwarnings("ignore", message=".*instance_norm.*train=True.*")
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
            torch.onnx.export(
                module.cpu(),
                tuple(t.detach().cpu() for t in example),
                temporary,
                dynamo=False,
                input_names=list(signature.inputs),
                output_names=list(signature.outputs),
                dynamic_axes=signature.dynamic_axes(),
                opset_version=opset,
                do_constant_folding=True,
                export_params=True,
            )
        onnx.checker.check_model(temporary, full_check=True)
        # mkstemp creates the file owner-only; a model file is package data, readable by all.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
        module.train(was_training)
    return path


def graph_signature(path: Path) -> OnnxSignature:
    """Reads back an exported graph's input and output names and its spatial axes.

    Spatial axes are recognised by the names `export_onnx` gives them; other symbolic
    axes the exporter adds (e.g. an inferred batch axis of an output) are not spatial.
    """
    model = onnx.load(str(path), load_external_data=False)

    def spatial(values: Sequence[onnx.ValueInfoProto]) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        for value in values:
            params = [d.dim_param for d in value.type.tensor_type.shape.dim]
            height, width = f"{value.name}_height", f"{value.name}_width"
            if height in params and width in params:
                found[value.name] = (params.index(height), params.index(width))
        return found

    return OnnxSignature(
        inputs=tuple(v.name for v in model.graph.input),
        outputs=tuple(v.name for v in model.graph.output),
        spatial={**spatial(model.graph.input), **spatial(model.graph.output)},
    )


ONNX_FILE = "model.onnx"
"""The exported graph's file name inside a model's weights directory."""

MANIFEST_FILE = "manifest.json"

EXPORT_SIDE = 64
"""Height and width of the example traced at export; any multiple of the stride runs."""


@dataclass(frozen=True)
class FamilyExport:
    """What to export for one family: the pure network, an example input and its names."""

    module: nn.Module
    example: tuple[Tensor, ...]
    signature: OnnxSignature


ADAIN_SIGNATURE = OnnxSignature(
    inputs=("image", "style_mean", "style_std", "alpha"),
    outputs=("stylized",),
    spatial={"image": (2, 3), "stylized": (2, 3)},
)
"""AdaIN's graph: encoder to the tap, AdaIN to the given statistics, alpha blend, decoder.

image: (1, 3, H, W) RGB in [0, 1], H and W multiples of the tap's stride;
style_mean, style_std: (1, C, 1, 1), the (mixed) style statistics at the tap;
alpha: a scalar, the blend of AdaIN and the content's own features;
stylized: (1, 3, H, W), unclamped (the family clamps).
"""

FEEDFORWARD_SIGNATURE = OnnxSignature(
    inputs=("image", "params"),
    outputs=("stylized",),
    spatial={"image": (2, 3), "stylized": (2, 3)},
)
"""The feed-forward transformation network: image and its (mixed) CIN parameters.

image: (1, 3, H, W) RGB in [0, 1], H and W multiples of the network's factor;
params: (1, 2C), every CIN layer's scales then shifts; stylized: (1, 3, H, W) in [0, 1].
"""


def adain_export(network: AdainTransfer, *, side: int = EXPORT_SIDE) -> FamilyExport:
    """The whole AdaIN network, so serving is one ONNX call per image or tile.

    Exporting encoder + AdaIN + decoder (rather than the decoder alone, with features as
    input) keeps torch off the per-tile path: the encoder up to b3 is a small share of
    the graph, and the only inputs left outside are the style statistics, which the
    family computes once per style and caches.
    """
    module = copy.deepcopy(network).to("cpu").to(memory_format=torch.contiguous_format).eval()
    channels = int(module.encode(torch.zeros(1, 3, side, side)).shape[1])
    generator = torch.Generator().manual_seed(0)
    example = (
        torch.rand(1, 3, side, side, generator=generator),
        torch.rand(1, channels, 1, 1, generator=generator),
        torch.rand(1, channels, 1, 1, generator=generator) + 0.5,
        torch.tensor(1.0),
    )
    return FamilyExport(module, example, ADAIN_SIGNATURE)


def feedforward_export(network: TransformNet, *, side: int = EXPORT_SIDE) -> FamilyExport:
    """The transformation network with its CIN parameters as an input (mixing stays out)."""
    module = copy.deepcopy(network).to("cpu").eval()
    mix = torch.zeros(1, module.slots)
    mix[0, 0] = 1.0
    generator = torch.Generator().manual_seed(0)
    example = (torch.rand(1, 3, side, side, generator=generator), module.slot_params(mix))
    return FamilyExport(module, example, FEEDFORWARD_SIGNATURE)


WCT_ENCODE_SIGNATURE = OnnxSignature(
    inputs=("image",),
    outputs=("features",),
    spatial={"image": (2, 3), "features": (2, 3)},
)
"""WCT's encoder up to one tap: image (1, 3, H, W) in [0, 1], H and W multiples of the
family's stride; features (1, C, H/s, W/s) at the tap."""

WCT_DECODE_SIGNATURE = OnnxSignature(
    inputs=("features",),
    outputs=("decoded",),
    spatial={"features": (2, 3), "decoded": (2, 3)},
)
"""WCT's decoder of one tap: (transformed) features to an unclamped (1, 3, H, W) image."""


class TapEncoder(nn.Module):
    """The encoder run up to one tap, returning that tap's features (an exportable form)."""

    def __init__(self, encoder: Lite0Encoder, tap: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.tap = tap

    def forward(self, image: Tensor) -> Tensor:
        features: Tensor = self.encoder.forward_features(image, (self.tap,))[self.tap]
        return features


def wct_graph_file(role: str, tap: str) -> str:
    """The file of WCT's `role` ("encode" or "decode") graph for `tap`, e.g. encode.b1.onnx."""
    if role not in ("encode", "decode"):
        raise ValueError(f"a WCT graph either encodes or decodes, not {role!r}")
    return f"{role}.{tap}.onnx"


def wct_exports(
    encoder: Lite0Encoder, decoders: WctDecoders, levels: Sequence[str], *, side: int = EXPORT_SIDE
) -> dict[str, FamilyExport]:
    """Per level, the encoder to its tap and its decoder, as two graphs by file name.

    The whitening and colouring between them needs an eigendecomposition, which ONNX
    has no operator for; it stays in torch (`WctFamily.transfer`).
    """
    encoder = copy.deepcopy(encoder).to("cpu").to(memory_format=torch.contiguous_format).eval()
    decoders = copy.deepcopy(decoders).to("cpu").to(memory_format=torch.contiguous_format).eval()
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, side, side, generator=generator)
    exports: dict[str, FamilyExport] = {}
    for tap in levels:
        to_tap = TapEncoder(encoder, tap).eval()
        with torch.no_grad():
            features = to_tap(image)
        exports[wct_graph_file("encode", tap)] = FamilyExport(
            to_tap, (image,), WCT_ENCODE_SIGNATURE
        )
        exports[wct_graph_file("decode", tap)] = FamilyExport(
            decoders.decoders[tap], (features,), WCT_DECODE_SIGNATURE
        )
    return exports


def family_exports(family: StyleFamily) -> dict[str, FamilyExport]:
    """The exportable networks of a built family by file name; gatys has none."""
    if isinstance(family, AdainFamily):
        return {ONNX_FILE: adain_export(family.network)}
    if isinstance(family, FeedforwardFamily):
        return {ONNX_FILE: feedforward_export(family.model.network)}
    if isinstance(family, WctFamily):
        return wct_exports(family.encoder, family.decoders, family.config.levels)
    raise ValueError(
        f"the {family.name} family has no feed-forward network to export "
        "(gatys optimises the pixels through the encoder's gradients)"
    )


def graph_files(spec: ModelSpec) -> list[str]:
    """The ONNX files a registered model's family runs on, in its weights directory."""
    if spec.family in ("adain", "feedforward"):
        return [ONNX_FILE]
    if spec.family == "wct":
        levels = WctConfig.from_mapping(spec.config).levels
        return [wct_graph_file(role, tap) for tap in levels for role in ("encode", "decode")]
    return []


def model_directory(spec: ModelSpec) -> Path:
    """The directory holding a registered model's weights (and its manifest and graph)."""
    folders = {weights.path().parent for weights in spec.weights.values()}
    if not folders:
        raise ValueError(
            f"{spec.name} ships no weights, so there is no network to export "
            f"(the {spec.family} family optimises pixels; only one-pass families export)"
        )
    if len(folders) != 1:
        raise ValueError(f"{spec.name} has no single weights directory: {sorted(folders)}")
    return folders.pop()


def export_model(name: str, *, directory: Path | None = None) -> list[Path]:
    """Exports registered model `name`'s graphs beside its weights; lists them.

    `model.onnx` for adain and feedforward, an encode and a decode graph per level for
    wct (`graph_files`). Adds (or replaces) each graph's entry in the manifest's `files`
    table, in the form the manifest already uses for its other files, and changes
    nothing else there; the manifest must be the canonical JSON its trainer wrote
    (indent 2, sorted keys), so the rewrite changes only those entries. The catalogue's
    pin on the manifest's sha256 (`gouache.catalogue`) must then be updated to the new
    digest, which `main` prints.
    """
    from gouache.nst import registry

    spec = registry.get(name)
    target = directory if directory is not None else model_directory(spec)
    written: list[Path] = []
    for file, exported in family_exports(registry.build_family(name)).items():
        path = export_onnx(exported.module, exported.example, target / file, exported.signature)
        add_manifest_entry(target / MANIFEST_FILE, path)
        written.append(path)
    return written


def add_manifest_entry(manifest_path: Path, file: Path) -> None:
    """Records `file`'s sha256 (and size, where the manifest records sizes) in `files`."""
    raw = manifest_path.read_text()
    manifest = json.loads(raw)
    if _canonical(manifest) != raw:
        raise ValueError(
            f"{manifest_path} is not canonical JSON (indent 2, sorted keys); refusing to "
            "rewrite it, since more than the files table would change"
        )
    files = manifest.setdefault("files", {})
    digest = file_sha256(file)
    others = [value for key, value in files.items() if key != file.name]
    if others and isinstance(others[0], Mapping):
        files[file.name] = {"sha256": digest, "bytes": file.stat().st_size}
    else:
        files[file.name] = digest
    manifest_path.write_text(_canonical(manifest))


def manifest_file_sha256(manifest_path: Path, name: str) -> str:
    """The sha256 the manifest records for file `name` (either form the trainers write)."""
    files = json.loads(manifest_path.read_text()).get("files", {})
    if name not in files:
        raise WeightsIntegrityError(f"{manifest_path} lists no sha256 for {name}")
    entry = files[name]
    return str(entry["sha256"] if isinstance(entry, Mapping) else entry)


def _canonical(manifest: Mapping[str, object]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m gouache.nst.export MODEL...`: writes each model's model.onnx and lists it."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m gouache.nst.export", description=__doc__)
    parser.add_argument("models", nargs="+", help="registered model names, e.g. adain.lite0-v1")
    args = parser.parse_args(argv)
    for name in args.models:
        try:
            paths = export_model(name)
        except (KeyError, ValueError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"error: {message}", file=sys.stderr)
            return 2
        for path in paths:
            print(f"{name}: {path} ({path.stat().st_size} bytes, sha256 {file_sha256(path)})")
        print(f"{name}: manifest sha256 now {file_sha256(paths[0].parent / MANIFEST_FILE)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
