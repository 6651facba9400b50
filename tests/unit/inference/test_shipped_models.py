"""The shipped model versions load in the service's host, in the runtime its settings name."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from services.inference.domain import ModelHost
from services.inference.server import registry_builder, registry_tile_size
from services.inference.settings import InferenceSettings

SHIPPED = InferenceSettings().model_versions()


def test_the_default_settings_load_every_family_and_prefer_onnx() -> None:
    settings = InferenceSettings()
    assert settings.runtime == "onnx"
    assert {name.split(".")[0] for name in SHIPPED} == {"adain", "feedforward", "gatys", "wct"}


@pytest.mark.parametrize("value", ["ONNX", " torch "])
def test_runtime_names_are_normalised(value: str) -> None:
    assert InferenceSettings(runtime=value).runtime == value.strip().lower()


def test_an_unknown_runtime_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="'torch' or 'onnx'"):
        InferenceSettings(runtime="tensorrt")


@pytest.mark.parametrize(
    ("version", "runtime", "expected"),
    [
        ("adain.lite0-v1", "onnx", "onnx"),
        ("feedforward.lite0-v1", "onnx", "onnx"),
        ("gatys.lite0-fast", "onnx", "torch"),  # no exported network: optimises pixels
        ("wct.lite0-v1", "onnx", "onnx"),  # graphs for the networks, the transform in torch
        ("wct.lite0-v1", "torch", "torch"),
        ("adain.lite0-v1", "torch", "torch"),
    ],
)
async def test_each_version_loads_and_warms_up_in_its_runtime(
    version: str, runtime: str, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    # feedforward paints only its trained styles: the warm-up must name one of them.
    host = ModelHost(
        [version],
        device="cpu",
        builder=registry_builder(runtime, threads=1),
        warmup_side=32,
        tile_size_of=registry_tile_size,
    )
    with caplog.at_level(logging.INFO, logger="services.inference.server"):
        await host.load_all()
    (model,) = host.models()
    assert model.ready
    assert model.family == version.split(".")[0]
    assert model.tile_size > 0
    chosen = [
        getattr(r, "runtime", None) for r in caplog.records if r.msg == "building model version"
    ]
    assert chosen == [expected]


def test_precision_is_auto_by_default_and_unknown_ones_are_refused() -> None:
    assert InferenceSettings().precision == "auto"
    assert InferenceSettings(precision=" FP16 ").precision == "fp16"
    with pytest.raises(ValidationError, match="'auto', 'fp16' or 'fp32'"):
        InferenceSettings(precision="int8")


@pytest.mark.parametrize(("precision", "expected"), [("auto", "fp32"), ("fp16", "fp16")])
async def test_the_load_logs_the_precision_chosen_and_the_parity_measured(
    precision: str, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    # On the CPU, auto keeps fp32 without measuring; fp16 asked for is measured first.
    host = ModelHost(
        ["adain.lite0-v1"],
        device="cpu",
        builder=registry_builder("onnx", threads=1, precision=precision),
        warmup_side=32,
        tile_size_of=registry_tile_size,
    )
    with caplog.at_level(logging.INFO, logger="services.inference.server"):
        await host.load_all()
    (record,) = [r for r in caplog.records if r.msg == "building model version"]
    assert getattr(record, "precision", None) == expected
    parity = getattr(record, "fp16_parity", None)
    assert (parity is None) == (precision == "auto")
    if parity is not None:
        assert parity.startswith("mean ")
