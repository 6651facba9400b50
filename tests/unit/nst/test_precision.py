"""fp16 graphs: the conversion, the parity gate and what `auto` chooses on each device."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from gouache.nst import onnx_runtime, registry
from gouache.nst.base import RGBImage, StyleFamily, StylizeControls, trained_style_keys
from gouache.nst.export import graph_files, model_directory
from gouache.nst.onnx_runtime import (
    OnnxNetwork,
    PrecisionParityError,
    batch_dynamic,
    build_onnx_family,
)
from gouache.nst.precision import (
    FP16_MAX,
    FP16_PARITY,
    STATISTICS_OPS,
    Parity,
    Probe,
    check_precision,
    compare,
    float16_graph,
    fp16_peak,
    measure_parity,
    probe,
)
from gouache.nst.specs import ModelSpec

SHIPPED = [
    spec
    for spec in registry.all_models()
    if graph_files(spec)
    and all((model_directory(spec) / file).is_file() for file in graph_files(spec))
]
SHIPPED_GRAPHS = [(spec, file) for spec in SHIPPED for file in graph_files(spec)]


def _tensor_types(values: Sequence[onnx.ValueInfoProto]) -> list[int]:
    return [value.type.tensor_type.elem_type for value in values]


@pytest.mark.parametrize(
    ("spec", "file"), SHIPPED_GRAPHS, ids=lambda item: getattr(item, "name", item)
)
def test_the_fp16_graph_keeps_float32_at_its_edges_and_statistics_in_float32(
    spec: ModelSpec, file: str
) -> None:
    original = batch_dynamic(onnx.load(str(model_directory(spec) / file)))
    converted = float16_graph(batch_dynamic(onnx.load(str(model_directory(spec) / file))))
    onnx.checker.check_model(converted)
    assert _tensor_types(converted.graph.input) == _tensor_types(original.graph.input)
    assert _tensor_types(converted.graph.output) == _tensor_types(original.graph.output)
    names = [node.name for node in converted.graph.node]
    assert len(names) == len(set(names))
    halves = [i for i in converted.graph.initializer if i.data_type == TensorProto.FLOAT16]
    constants = [
        n
        for n in converted.graph.node
        if n.op_type == "Constant" and n.attribute[0].t.data_type == TensorProto.FLOAT16
    ]
    assert halves or constants, "no weight was converted"
    # Every statistic reads float32: its inputs come from a Cast to float, the graph's
    # inputs, or other float32 nodes, never straight from a float16 tensor.
    produced_by = {out: node for node in converted.graph.node for out in node.output}
    for node in converted.graph.node:
        if node.op_type not in STATISTICS_OPS:
            continue
        for name in node.input:
            producer = produced_by.get(name)
            if producer is not None and producer.op_type == "Cast":
                to = next(a.i for a in producer.attribute if a.name == "to")
                assert to == TensorProto.FLOAT, f"{node.name} reads {name} as {to}"


@pytest.mark.parametrize("spec", SHIPPED, ids=lambda spec: spec.name)
def test_fp16_keeps_parity_with_fp32_on_every_shipped_model(spec: ModelSpec) -> None:
    family, choice = build_onnx_family(spec.name, precision="fp16")
    assert choice.precision == "fp16"
    assert choice.parity is not None
    assert choice.parity.holds(FP16_PARITY)
    # The fp16 graphs are the ones serving, not the fp32 ones measured beside them.
    assert _graph_precisions(family) == {"fp16"}


@pytest.mark.parametrize("spec", SHIPPED, ids=lambda spec: spec.name)
def test_what_fp16_holds_stays_far_below_its_largest_finite_value(
    spec: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The feeds each graph gets when the family stylizes the probe, then the float32
    # graph's largest value among the tensors the fp16 graph would hold in float16.
    feeds: dict[Path, list[dict[str, np.ndarray]]] = {}
    run = OnnxNetwork.run

    def recording(self: OnnxNetwork, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds.setdefault(self.path, []).append({k: np.array(v) for k, v in inputs.items()})
        return run(self, inputs)

    monkeypatch.setattr(OnnxNetwork, "run", recording)
    family = onnx_runtime.build_family(spec.name, runtime="onnx")
    keys = list(trained_style_keys(family)[:1]) or None
    shown = probe()
    family.stylize(shown.content, [shown.style], [1.0], StylizeControls(), style_keys=keys)
    assert {path.name for path in feeds} == set(graph_files(spec))
    for path, sent in feeds.items():
        peak = fp16_peak(batch_dynamic(onnx.load(str(path))), sent)
        # Measured at 256 px: at most 188 (adain's recoloured features; 134 at 512 px).
        assert 1.0 < peak.value < FP16_MAX / 64, f"{path.name}: {peak}"


def test_auto_on_the_cpu_is_fp32_without_measuring() -> None:
    family, choice = build_onnx_family("adain.lite0-v1", device="cpu", precision="auto")
    assert (choice.precision, choice.parity) == ("fp32", None)
    assert "CUDA only" in choice.reason
    assert _graph_precisions(family) == {"fp32"}


def test_auto_on_cuda_serves_fp16_where_parity_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CPU stands in for CUDA: the choice is what is tested, not the kernels.
    monkeypatch.setattr(onnx_runtime, "runs_on_cuda", lambda device: True)
    family, choice = build_onnx_family("adain.lite0-v1", precision="auto")
    assert choice.precision == "fp16"
    assert choice.parity is not None
    assert _graph_precisions(family) == {"fp16"}


class _Saturating:
    """A family whose fp16 form overflowed: every pixel of its picture is white."""

    name = "saturating"

    def __init__(self, inner: StyleFamily) -> None:
        self.inner = inner

    def stylize(self, content: RGBImage, *args: object, **kwargs: object) -> RGBImage:
        return np.full_like(content, 255)


@pytest.fixture
def fp16_overflows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The adain builder's fp16 family paints white, as an overflowed graph does."""
    real = onnx_runtime._ONNX_BUILDERS["adain"]

    def build(
        spec: ModelSpec, device: torch.device, threads: int | None, precision: str
    ) -> StyleFamily:
        family = real(spec, device, threads, "fp32")
        return _Saturating(family) if precision == "fp16" else family

    monkeypatch.setitem(onnx_runtime._ONNX_BUILDERS, "adain", build)
    monkeypatch.setattr(onnx_runtime, "runs_on_cuda", lambda device: True)


@pytest.mark.usefixtures("fp16_overflows")
def test_fp16_asked_for_without_parity_fails_the_load_with_the_difference() -> None:
    with pytest.raises(PrecisionParityError) as raised:
        build_onnx_family("adain.lite0-v1", precision="fp16")
    message = str(raised.value)
    assert "adain.lite0-v1: fp16 strays from fp32" in message
    assert "p99.9" in message
    assert "'fp32' or 'auto'" in message


@pytest.mark.usefixtures("fp16_overflows")
def test_auto_without_parity_serves_fp32_and_says_why() -> None:
    family, choice = build_onnx_family("adain.lite0-v1", precision="auto")
    assert choice.precision == "fp32"
    assert choice.parity is not None
    assert not choice.parity.holds(FP16_PARITY)
    assert "strays from fp32" in choice.reason
    assert not isinstance(family, _Saturating)


def test_precision_names_are_checked() -> None:
    assert check_precision("fp16") == "fp16"
    with pytest.raises(ValueError, match="known: fp32, fp16, auto"):
        check_precision("int8")


def test_parity_is_measured_in_uint8_levels() -> None:
    reference = np.zeros((10, 100, 3), np.uint8)
    candidate = reference.copy()
    candidate[0, :4, 0] = 9  # 4 of 3000 values (0.13 %) off by 9: p99.9 sits on them
    parity = compare(reference, candidate)
    assert parity == Parity(mean=0.012, p999=9.0, max=9, pixels=3000)
    assert not parity.holds(FP16_PARITY)
    candidate[0, :4, 0] = 4
    assert compare(reference, candidate).holds(FP16_PARITY)
    with pytest.raises(ValueError, match="shapes differ"):
        compare(reference, candidate[:5])


def test_a_probe_can_be_given(chelsea: np.ndarray, stripes: np.ndarray) -> None:
    family = onnx_runtime.build_family("adain.lite0-v1", runtime="onnx")
    sample = Probe(content=chelsea[:40, :56], style=stripes)
    assert measure_parity(family, family, sample) == Parity(0.0, 0.0, 0, 40 * 56 * 3)


def _overflowing_graph() -> onnx.ModelProto:
    """x * 1000 then * 0.001: 70 becomes 70,000 in between, past fp16's 65,504."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [
        helper.make_node("Mul", ["x", "big"], ["a"], name="up"),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Mul", ["r", "small"], ["y"], name="down"),
    ]
    weights = [
        helper.make_tensor("big", TensorProto.FLOAT, [1], [1000.0]),
        helper.make_tensor("small", TensorProto.FLOAT, [1], [0.001]),
    ]
    graph = helper.make_graph(nodes, "overflow", [x], [y], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_a_network_loads_the_fp16_graph_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "overflow.onnx"
    onnx.save(_overflowing_graph(), str(path))
    full = OnnxNetwork(path, precision="fp32")
    half = OnnxNetwork(path, precision="fp16")
    feed = {"x": np.array([[1.0, 50.0, 70.0, 0.001234]], np.float32)}
    assert full.precision == "fp32"
    assert half.precision == "fp16"
    np.testing.assert_allclose(full.run(feed)["y"], feed["x"], rtol=1e-6)
    # The weights are rounded to fp16 (1000 stays, 0.001 becomes 0.0010004); on the CPU
    # provider the products are computed in float32 between casts, so 70,000 does not
    # overflow here; on CUDA it would, which is what the parity gate is for.
    np.testing.assert_allclose(half.run(feed)["y"], feed["x"], rtol=1e-3)
    assert half.run(feed)["y"].dtype == np.float32


def _graph_precisions(family: StyleFamily) -> set[str]:
    """The precision of every ONNX graph a family holds, found by walking its fields."""
    found: set[str] = set()

    def walk(value: object, depth: int) -> None:
        if isinstance(value, OnnxNetwork):
            found.add(value.precision)
        elif depth < 3 and isinstance(value, dict):
            for item in value.values():
                walk(item, depth + 1)
        elif depth < 3 and getattr(value, "__closure__", None):
            for cell in value.__closure__:  # type: ignore[attr-defined]
                walk(cell.cell_contents, depth + 1)
        elif depth < 3 and hasattr(value, "__dict__"):
            for item in vars(value).values():
                walk(item, depth + 1)

    walk(family, 0)
    assert found, f"no ONNX graph found in {type(family).__name__}"
    return found
