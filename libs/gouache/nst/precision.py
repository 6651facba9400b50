"""Half precision for the exported networks: the fp16 graph, and the parity it must keep.

A one-pass network converted to float16 runs its convolutions on the GPU's tensor cores
at half the memory traffic. It is only served where its pictures stay those of the
float32 graph: `measure_parity` stylizes a fixed probe with both and compares the
uint8 results, and `FP16_PARITY` is the bar. The float32 file stays the one the
manifest's sha256 pins; the fp16 graph is derived from it in memory at load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np
import numpy.typing as npt
import onnx

from gouache.nst.base import RGBImage, StyleFamily, StylizeControls, trained_style_keys

Precision = Literal["fp32", "fp16", "auto"]
"""fp32: the exported graph as is. fp16: the graph converted to float16, refused where
parity fails. auto: fp16 on CUDA where parity holds, fp32 everywhere else."""

GraphPrecision = Literal["fp32", "fp16"]
"""What one loaded graph runs at, once `auto` is resolved."""

PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "auto")

STATISTICS_OPS: frozenset[str] = frozenset(
    {"ReduceMean", "ReduceSumSquare", "Sqrt", "Div", "Pow", "InstanceNormalization"}
)
"""Op types kept in float32 in an fp16 graph: normalisation statistics (means, variances,
the divisions by them) lose the most to fp16's 11-bit mantissa, and a sum of squares is
where a value first passes fp16's largest finite number, 65504."""


def check_precision(precision: str) -> Precision:
    """Returns `precision` typed, or raises ValueError naming the known precisions."""
    for known in PRECISIONS:
        if precision == known:
            return known
    raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")


def _is_square(node: onnx.NodeProto) -> bool:
    """A Mul of a tensor by itself: kept float32 with the statistics it feeds."""
    return node.op_type == "Mul" and len(node.input) == 2 and node.input[0] == node.input[1]


def float16_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with its weights and activations in float16, inputs and outputs in float32.

    Callers keep feeding and reading float32 (Cast nodes at the edges). Statistics
    (`STATISTICS_OPS`) and squares (a Mul of a tensor by itself) stay float32.
    """
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    squares = [node.name for node in model.graph.node if _is_square(node)]
    converted: onnx.ModelProto = convert_float_to_float16(
        model,
        keep_io_types=True,
        op_block_list=[*DEFAULT_OP_BLOCK_LIST, *sorted(STATISTICS_OPS)],
        node_block_list=squares,
    )
    return _tidied(converted)


def _tidied(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` made a valid graph again: repeated nodes dropped, nodes in producer order.

    The converter gives a float16 tensor read by two float32 consumers (or twice by
    one, as a square is) one Cast per read, all with the same name and output; they
    compute the same thing, so the first is kept. It also appends the Casts of the
    graph's inputs after the nodes that read them, where the checker wants them first.
    """
    seen: set[bytes] = set()
    nodes: list[onnx.NodeProto] = []
    for node in model.graph.node:
        key = node.SerializeToString(deterministic=True)
        if key not in seen:
            seen.add(key)
            nodes.append(node)
    ready = {value.name for value in model.graph.input}
    ready.update(weight.name for weight in model.graph.initializer)
    ordered: list[onnx.NodeProto] = []
    while nodes:
        waiting: list[onnx.NodeProto] = []
        for node in nodes:
            if all(not name or name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(nodes):
            raise ValueError(f"the fp16 graph has a cycle or a missing input at {waiting[0].name}")
        nodes = waiting
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    return model


@dataclass(frozen=True)
class Tolerance:
    """How far an fp16 picture may stray from the fp32 one, in uint8 levels (0-255)."""

    mean: float
    p999: float


FP16_PARITY = Tolerance(mean=0.5, p999=4.0)
"""The bar fp16 must keep on the probe: on average half a level, and 999 pixels of every
1000 within 4 of 255 levels of fp32; a JPEG export at quality 95 strays further (the probe's
photo: mean 2.25, p99.9 26 levels). Measured on CPU,
where ONNX Runtime computes fp16 nodes in fp32 between casts, the shipped models sit far
inside it (tests/unit/nst/test_precision.py); on CUDA the real fp16 kernels are measured
at every load."""


@dataclass(frozen=True)
class Parity:
    """The uint8 difference between an fp32 and an fp16 picture of the same probe."""

    mean: float
    p999: float
    max: int
    pixels: int

    def holds(self, tolerance: Tolerance = FP16_PARITY) -> bool:
        return self.mean <= tolerance.mean and self.p999 <= tolerance.p999

    def describe(self) -> str:
        return (
            f"mean {self.mean:.3f}, p99.9 {self.p999:.1f}, max {self.max} levels "
            f"over {self.pixels} values"
        )


def compare(reference: RGBImage, candidate: RGBImage) -> Parity:
    """The difference of `candidate` from `reference`, both uint8 HxWx3 of one size."""
    if reference.shape != candidate.shape:
        raise ValueError(f"shapes differ: {reference.shape} and {candidate.shape}")
    difference = np.abs(reference.astype(np.int16) - candidate.astype(np.int16))
    return Parity(
        mean=float(difference.mean()),
        p999=float(np.quantile(difference, 0.999)),
        max=int(difference.max()),
        pixels=int(difference.size),
    )


PROBE_SIDE = 256
"""Long side of the probe's content: large enough for every level of the encoder to see
a real picture, small enough to cost well under a second per precision on a GPU."""


@dataclass(frozen=True)
class Probe:
    content: RGBImage
    style: RGBImage


@cache
def probe(side: int = PROBE_SIDE) -> Probe:
    """A photo and a texture from scikit-image's bundled images: nothing to mount."""
    from gouache.nst.eval_grid import skimage_grid

    grid = skimage_grid(side=side, contents=("astronaut",), styles=("immunohistochemistry",))
    return Probe(content=grid.contents[0].pixels, style=grid.styles[0].pixels)


def measure_parity(
    reference: StyleFamily, candidate: StyleFamily, sample: Probe | None = None
) -> Parity:
    """Stylizes the probe with both families (full strength) and compares the pictures.

    A family that paints only its trained styles is given the key of its first one.
    """
    shown = sample or probe()
    keys = trained_style_keys(reference)
    style_keys = list(keys[:1]) if keys else None
    controls = StylizeControls()
    pictures = [
        family.stylize(shown.content, [shown.style], [1.0], controls, style_keys=style_keys)
        for family in (reference, candidate)
    ]
    return compare(pictures[0], pictures[1])


FP16_MAX = float(np.finfo(np.float16).max)
"""65504: past it a float16 tensor is infinite."""


@dataclass(frozen=True)
class Peak:
    """The largest magnitude a graph's float16 part reaches, and the tensor reaching it."""

    value: float
    tensor: str


def fp16_peak(
    model: onnx.ModelProto, feeds: Sequence[Mapping[str, npt.NDArray[np.float32]]]
) -> Peak:
    """Runs the float32 `model` on `feeds` and finds the largest |value| that
    `float16_graph` would hold in float16 (every node's output but those kept float32).

    The headroom below `FP16_MAX` is the range half precision has to spare on those
    inputs; it is measured in float32 on the CPU, where fp16 kernels do not run.
    """
    import onnxruntime as ort

    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    kept = {
        name
        for node in probed.graph.node
        if node.op_type in STATISTICS_OPS or _is_square(node)
        for name in node.output
    }
    watched = [
        name
        for node in probed.graph.node
        if node.op_type not in ("Constant", "Shape")
        for name in node.output
        if name and name not in kept
    ]
    del probed.graph.output[:]
    probed.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in watched)
    session = ort.InferenceSession(probed.SerializeToString(), providers=["CPUExecutionProvider"])
    peak = Peak(0.0, "")
    for feed in feeds:
        for name, value in zip(watched, session.run(watched, dict(feed)), strict=True):
            array = np.asarray(value)
            if array.dtype.kind == "f" and array.size:
                largest = float(np.abs(array).max())
                if largest > peak.value:
                    peak = Peak(largest, name)
    return peak
