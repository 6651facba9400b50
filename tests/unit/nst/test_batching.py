"""Batched stylization: several items in one network pass give what one call per item gives."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from gouache.nst import registry
from gouache.nst.base import (
    Canceled,
    Cancellation,
    StyleFamily,
    StylizeControls,
    trained_style_keys,
)
from gouache.nst.batching import StylizeItem, batches, stylize_batch
from gouache.nst.export import graph_files, model_directory
from gouache.nst.onnx_runtime import OnnxNetwork, build_family, has_onnx_runtime

ONE_PASS = [spec for spec in registry.all_models() if spec.family != "gatys"]
"""Every registered model that paints in one pass (gatys optimises, one image at a time)."""

CASES = [
    pytest.param(spec.name, runtime, id=f"{spec.name}-{runtime}")
    for spec in ONE_PASS
    for runtime in ("torch", "onnx")
    if runtime == "torch" or has_onnx_runtime(spec.name)
]


def _image(seed: int, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = rng.integers(0, 256, (height // 4 + 1, width // 4 + 1, 3)).astype(np.float32)
    grown = np.kron(smooth, np.ones((4, 4, 1)))[:height, :width]
    noisy = grown + rng.normal(0.0, 12.0, grown.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _items(family: StyleFamily) -> list[StylizeItem]:
    """Same-size tiles in different styles, weights and controls, and one of another size."""
    keys = trained_style_keys(family)
    styles = [_image(10 + i, 40 + 8 * i, 48) for i in range(3)]

    def item(
        seed: int, shape: tuple[int, int], chosen: list[int], **controls: object
    ) -> StylizeItem:
        return StylizeItem(
            content=_image(seed, *shape),
            styles=[styles[i] for i in chosen],
            weights=[1.0 + i for i in range(len(chosen))],
            controls=StylizeControls(**controls),  # type: ignore[arg-type]
            style_keys=[keys[i % len(keys)] for i in chosen] if keys else None,
        )

    return [
        item(1, (72, 56), [0]),
        item(2, (72, 56), [1, 2]),
        item(3, (72, 56), [2], alpha=0.6),
        item(4, (72, 56), [0, 1], luminance_only=True, tv_weight=2.0),
        item(5, (72, 56), [1], histogram_match=True),
        item(6, (45, 61), [2]),
        item(7, (72, 56), [0], alpha=0.0),
    ]


@pytest.mark.parametrize(("model", "runtime"), CASES)
def test_a_batch_paints_what_one_call_per_item_paints(model: str, runtime: str) -> None:
    family = build_family(model, runtime="onnx" if runtime == "onnx" else "torch", threads=1)
    items = _items(family)
    singles = [
        family.stylize(
            item.content, item.styles, item.weights, item.controls, style_keys=item.style_keys
        )
        for item in items
    ]
    batched = stylize_batch(family, items)
    assert len(batched) == len(items)
    for index, (one, many) in enumerate(zip(singles, batched, strict=True)):
        assert many.shape == one.shape, index
        difference = np.abs(many.astype(np.int16) - one.astype(np.int16))
        # Float sums in another order may flip a rounding to uint8, never more.
        assert difference.max() <= 1, (index, int(difference.max()))
        assert (difference > 0).mean() < 0.01, index
    # The items differ, so their outputs must too: a batch that repeated one would fail.
    assert not np.array_equal(batched[0], batched[1])


@pytest.mark.parametrize("model", [spec.name for spec in ONE_PASS])
def test_every_one_pass_family_batches_and_gatys_loops(model: str) -> None:
    assert batches(registry.build_family(model))
    assert not batches(registry.build_family("gatys.lite0-fast"))


@pytest.mark.parametrize("model", [spec.name for spec in ONE_PASS])
def test_a_canceled_item_stops_its_batch_before_the_pass(model: str) -> None:
    family = registry.build_family(model)
    items = _items(family)[:3]
    token = Cancellation()
    token.cancel()
    canceled = StylizeItem(
        items[1].content,
        items[1].styles,
        items[1].weights,
        items[1].controls,
        items[1].style_keys,
        cancellation=token,
    )
    with pytest.raises(Canceled):
        stylize_batch(family, [items[0], canceled, items[2]])


GRAPHS = [
    pytest.param(spec.name, file, id=f"{spec.name}-{file}")
    for spec in ONE_PASS
    for file in graph_files(spec)
]


@pytest.mark.parametrize(("model", "file"), GRAPHS)
def test_the_session_takes_a_batch_and_matches_the_file_at_batch_one(model: str, file: str) -> None:
    path = model_directory(registry.get(model)) / file
    network = OnnxNetwork(path, threads=1)
    plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed: dict[str, np.ndarray] = {}
    for value in onnx.load(str(path)).graph.input:
        dims = [d.dim_value or 48 for d in value.type.tensor_type.shape.dim]
        feed[value.name] = np.asarray(rng.random(dims, dtype=np.float32) + 0.5)
    expected = plain.run(None, feed)[0]
    assert np.array_equal(network.run(feed)[network.output_names[0]], expected)
    doubled = {
        name: np.concatenate([array, array[:, ::-1].copy()]) if array.ndim else array
        for name, array in feed.items()
    }
    both = network.run(doubled)[network.output_names[0]]
    assert both.shape[0] == 2
    np.testing.assert_allclose(both[:1], expected, atol=1e-5)
    assert not np.allclose(both[1:], expected, atol=1e-3)
