"""ONNX Runtime sessions for exported networks: CUDA provider when present, CPU otherwise."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import torch
from torch import Tensor

from gouache.nst.base import StyleFamily
from gouache.nst.encoders.lite0 import WeightsIntegrityError, file_sha256, load_lite0
from gouache.nst.export import (
    MANIFEST_FILE,
    ONNX_FILE,
    manifest_file_sha256,
    model_directory,
    wct_graph_file,
)
from gouache.nst.families.adain import AdainConfig, AdainFamily, load_decoder
from gouache.nst.families.feedforward import FeedforwardConfig, FeedforwardFamily, load_shipped
from gouache.nst.families.wct import WctConfig, WctFamily, WctRunners, load_decoders
from gouache.nst.precision import (
    FP16_PARITY,
    GraphPrecision,
    Parity,
    Precision,
    check_precision,
    float16_graph,
    measure_parity,
)
from gouache.nst.specs import ModelSpec

logger = logging.getLogger(__name__)

Runtime = Literal["torch", "onnx"]
RUNTIMES: tuple[Runtime, ...] = ("torch", "onnx")

OnnxFamilyBuilder = Callable[[ModelSpec, torch.device, "int | None", GraphPrecision], StyleFamily]
"""Builds a family whose network runs in ONNX Runtime: (spec, device, threads, precision)."""

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


def check_runtime(runtime: str) -> Runtime:
    """Returns `runtime` typed, or raises ValueError naming the known runtimes."""
    for known in RUNTIMES:
        if runtime == known:
            return known
    raise ValueError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")


def providers_for(device: str | torch.device) -> list[str]:
    """Execution providers for `device`: CUDA first when asked for and installed, then CPU.

    Asking for "cuda" where this onnxruntime build has no CUDA provider (the PyPI
    `onnxruntime` wheel is CPU-only; `onnxruntime-gpu` has it) falls back to the CPU
    rather than failing, the same way the inference service treats torch.
    """
    wanted = torch.device(device).type == "cuda"
    if wanted and _CUDA in ort.get_available_providers():
        return [_CUDA, _CPU]
    return [_CPU]


def has_onnx_runtime(name: str) -> bool:
    """Whether registered model `name` has an exported network ONNX Runtime can run."""
    from gouache.nst import registry

    return registry.get(name).family in _ONNX_BUILDERS


class OnnxNetwork:
    """An exported network run by ONNX Runtime, callable like the torch module it replaces.

    `run` takes and returns numpy arrays by name; calling the object with torch tensors
    (positionally, in the graph's input order) returns a torch tensor on the inputs'
    device, so a family can hold either this or its `nn.Module` and not tell them apart.

    `sha256`, when given, is checked against the file before the session is built, so
    a model version never runs a graph other than the one its manifest lists. `threads`
    sets ONNX Runtime's intra-op threads (None: one per core, ONNX Runtime's default);
    sessions are safe to call from several threads.

    The exported graphs fix their batch axis at one (`gouache.nst.export`); the session
    runs the checked file with that axis made symbolic (`batch_dynamic`), so a family
    can send several images in one run without a re-export, which would change the
    pinned sha256s. Outputs at batch one are bit-identical to the file's own.

    `precision` "fp16" runs the checked file converted to float16 in memory
    (`gouache.nst.precision.float16_graph`); inputs and outputs stay float32.
    """

    def __init__(
        self,
        path: Path,
        *,
        device: str | torch.device = "cpu",
        threads: int | None = None,
        sha256: str | None = None,
        precision: GraphPrecision = "fp32",
    ) -> None:
        if sha256 is not None:
            actual = file_sha256(path)
            if actual != sha256:
                raise WeightsIntegrityError(f"{path} has sha256 {actual}, expected {sha256}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.path = path
        self.precision: GraphPrecision = precision
        model = batch_dynamic(onnx.load(str(path)))
        if precision == "fp16":
            model = float16_graph(model)
        self._session = ort.InferenceSession(
            model.SerializeToString(),
            sess_options=options,
            providers=providers_for(device),
        )
        self.input_names: tuple[str, ...] = tuple(i.name for i in self._session.get_inputs())
        self.output_names: tuple[str, ...] = tuple(o.name for o in self._session.get_outputs())

    @property
    def providers(self) -> list[str]:
        """The providers the session actually runs on, in priority order."""
        chosen: list[str] = self._session.get_providers()
        return chosen

    def run(
        self, inputs: Mapping[str, npt.NDArray[np.float32]]
    ) -> dict[str, npt.NDArray[np.float32]]:
        """Runs the graph on float32 inputs named as in the graph; returns outputs by name."""
        missing = set(self.input_names).difference(inputs)
        if missing:
            raise ValueError(f"{self.path.name}: missing inputs {sorted(missing)}")
        feed = {
            name: np.ascontiguousarray(inputs[name], dtype=np.float32) for name in self.input_names
        }
        results = self._session.run(list(self.output_names), feed)
        return {
            name: np.asarray(value, dtype=np.float32)
            for name, value in zip(self.output_names, results, strict=True)
        }

    def __call__(self, *tensors: Tensor) -> Tensor:
        """Runs on torch tensors given in graph input order; returns the first output."""
        if len(tensors) != len(self.input_names):
            raise ValueError(
                f"{self.path.name} takes {len(self.input_names)} inputs "
                f"({', '.join(self.input_names)}), got {len(tensors)}"
            )
        feed = {
            name: tensor.detach().to("cpu", torch.float32).numpy()
            for name, tensor in zip(self.input_names, tensors, strict=True)
        }
        output = self.run(feed)[self.output_names[0]]
        return torch.from_numpy(output).to(tensors[0].device)


BATCH_AXIS = "batch"


def batch_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with the leading axis of every input and output fixed at 1 made symbolic.

    Scalars (alpha) are left alone. Inferred intermediate shapes are dropped, since they
    carry the batch of one; ONNX Runtime infers them again for each run's shapes.
    """
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) > 0 and dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            dims[0].Clear()
            dims[0].dim_param = BATCH_AXIS
    del model.graph.value_info[:]
    return model


def max_abs_difference(
    torch_module: torch.nn.Module, network: OnnxNetwork, inputs: Sequence[Tensor]
) -> float:
    """The largest absolute difference between the module's and the graph's first output."""
    with torch.no_grad():
        expected = torch_module(*inputs)
    actual = network(*inputs)
    return float((expected.float().cpu() - actual.float().cpu()).abs().max())


def build_family(
    name: str,
    *,
    device: str = "cpu",
    runtime: Runtime = "torch",
    threads: int | None = None,
    precision: Precision = "fp32",
) -> StyleFamily:
    """Builds registered model `name` to run its network with `runtime`.

    "torch" is the registry's own builder. "onnx" runs the family's exported network
    (the model directory's `model.onnx`, sha256-checked against its manifest) with ONNX
    Runtime, behind the same `StyleFamily` interface; families without a feed-forward
    network (gatys optimises pixels through the encoder's gradients) have no ONNX form.
    `precision` applies to "onnx" only; see `build_onnx_family`.
    """
    from gouache.nst import registry

    if check_runtime(runtime) == "torch":
        return registry.build_family(name, device=device)
    family, _ = build_onnx_family(name, device=device, threads=threads, precision=precision)
    return family


@dataclass(frozen=True)
class PrecisionChoice:
    """What a model version's graphs run at, and why: for the log line at load."""

    precision: GraphPrecision
    reason: str
    parity: Parity | None = None


class PrecisionParityError(ValueError):
    """fp16 was asked for and its pictures strayed from fp32's past `FP16_PARITY`."""


def runs_on_cuda(device: str | torch.device) -> bool:
    """Whether ONNX Runtime sessions for `device` get the CUDA execution provider."""
    return providers_for(device)[0] == _CUDA


def build_onnx_family(
    name: str,
    *,
    device: str = "cpu",
    threads: int | None = None,
    precision: Precision = "fp32",
) -> tuple[StyleFamily, PrecisionChoice]:
    """Builds registered model `name` on ONNX Runtime at `precision`; says what it chose.

    "fp32" loads the exported graphs as they are. "fp16" and "auto" on CUDA also load
    them converted to float16, stylize a probe with both (`measure_parity`) and keep
    fp16 only when the pictures agree within `FP16_PARITY`; otherwise "auto" keeps fp32
    and "fp16" raises `PrecisionParityError` with the measured difference. "auto" off
    CUDA is fp32: ONNX Runtime's CPU provider has no fp16 kernels for these graphs and
    computes their fp16 nodes in fp32 between casts, so half precision buys nothing there.
    """
    from gouache.nst import registry

    wanted = check_precision(precision)
    spec = registry.get(name)
    builder = _ONNX_BUILDERS.get(spec.family)
    if builder is None:
        raise ValueError(
            f"{name}: the {spec.family} family has no ONNX runtime "
            f"(ONNX families: {', '.join(sorted(_ONNX_BUILDERS)) or 'none'}); use runtime 'torch'"
        )
    torch_device = torch.device(device)
    full = builder(spec, torch_device, threads, "fp32")
    if wanted == "fp32":
        return full, PrecisionChoice("fp32", "fp32 asked for")
    if wanted == "auto" and not runs_on_cuda(torch_device):
        return full, PrecisionChoice("fp32", "auto: fp16 is served on CUDA only")
    half = builder(spec, torch_device, threads, "fp16")
    parity = measure_parity(full, half)
    if parity.holds(FP16_PARITY):
        return half, PrecisionChoice("fp16", f"{wanted}: parity holds", parity)
    message = (
        f"{name}: fp16 strays from fp32 on the probe ({parity.describe()}); "
        f"the bar is mean {FP16_PARITY.mean}, p99.9 {FP16_PARITY.p999}"
    )
    if wanted == "fp16":
        raise PrecisionParityError(f"{message}; serve it at precision 'fp32' or 'auto'")
    logger.warning("fp16 refused, serving fp32", extra={"model_version": name, "parity": message})
    return full, PrecisionChoice("fp32", f"auto: {message}", parity)


def _graph(
    spec: ModelSpec,
    device: torch.device,
    threads: int | None,
    precision: GraphPrecision,
    file: str = ONNX_FILE,
) -> OnnxNetwork:
    """One of the model's graphs, checked against the sha256 its manifest lists."""
    directory = model_directory(spec)
    expected = manifest_file_sha256(directory / MANIFEST_FILE, file)
    return OnnxNetwork(
        directory / file, device=device, threads=threads, sha256=expected, precision=precision
    )


def _build_adain(
    spec: ModelSpec, device: torch.device, threads: int | None, precision: GraphPrecision
) -> StyleFamily:
    config = AdainConfig.from_mapping(spec.config)
    graph = _graph(spec, device, threads, precision)

    def run_graph(image: Tensor, mean: Tensor, std: Tensor, alpha: Tensor) -> Tensor:
        # The graph is exported for float32 and a stride-padded image, as the family sends.
        return graph(image, mean, std, alpha.to(torch.float32))

    return AdainFamily(
        config,
        load_lite0(device=device),
        load_decoder(spec),
        model_version=spec.name,
        device=device,
        runner=run_graph,
    )


def _build_feedforward(
    spec: ModelSpec, device: torch.device, threads: int | None, precision: GraphPrecision
) -> StyleFamily:
    return FeedforwardFamily(
        load_shipped(spec.weights, device=device),
        load_lite0(device=device),
        config=FeedforwardConfig.from_mapping(spec.config),
        device=device,
        runner=_graph(spec, device, threads, precision),
    )


def _build_wct(
    spec: ModelSpec, device: torch.device, threads: int | None, precision: GraphPrecision
) -> StyleFamily:
    config = WctConfig.from_mapping(spec.config)

    def graphs(role: str) -> dict[str, OnnxNetwork]:
        return {
            tap: _graph(spec, device, threads, precision, wct_graph_file(role, tap))
            for tap in config.levels
        }

    return WctFamily(
        config,
        load_lite0(device=device),
        load_decoders(spec),
        model_version=spec.name,
        device=device,
        runners=WctRunners(encode=graphs("encode"), decode=graphs("decode")),
    )


_ONNX_BUILDERS: Mapping[str, OnnxFamilyBuilder] = {
    "adain": _build_adain,
    "feedforward": _build_feedforward,
    "wct": _build_wct,
}
