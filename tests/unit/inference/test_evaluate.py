"""EvaluateModelVersion: a served version measured on the golden set beside the baseline."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from gouache.contracts.inference.v1 import inference_pb2, inference_pb2_grpc
from services.inference.settings import InferenceSettings
from tests.unit.inference.fakes import (
    IdentityFamily,
    TrainedOnlyFamily,
    metadata,
    operator,
    serving,
)

IDENTITY = IdentityFamily()


@pytest.fixture(scope="module")
async def stub() -> AsyncIterator[inference_pb2_grpc.InferenceServiceStub]:
    settings = InferenceSettings(
        port=0, models="identity-canary=identity.v1,trained.v1", torch_threads=1
    )
    families = {"identity.v1": IDENTITY, "trained.v1": TrainedOnlyFamily()}
    async with serving(settings, families) as running:
        yield running


async def _evaluate(
    stub: inference_pb2_grpc.InferenceServiceStub,
    version: str,
    auth: tuple[tuple[str, str], ...] | None = None,
) -> inference_pb2.EvaluateModelVersionResponse:
    reply: inference_pb2.EvaluateModelVersionResponse = await stub.EvaluateModelVersion(
        inference_pb2.EvaluateModelVersionRequest(model_version=version),
        metadata=auth or operator(),
        timeout=120,
    )
    return reply


async def test_an_identity_model_scores_a_worse_style_than_the_baseline(
    stub: inference_pb2_grpc.InferenceServiceStub,
) -> None:
    reply = await _evaluate(stub, "identity-canary")
    assert reply.model_version == "identity-canary"
    assert reply.pairs == 4
    assert reply.baseline_style_distance > 0
    assert reply.style_distance > reply.baseline_style_distance
    assert reply.content_distance == 0.0  # it returned the content itself
    assert reply.baseline_content_distance > 0
    assert "astronaut, chelsea" in reply.golden_set
    assert "128 px" in reply.golden_set


async def test_a_second_evaluation_is_answered_from_memory(
    stub: inference_pb2_grpc.InferenceServiceStub,
) -> None:
    first = await _evaluate(stub, "identity-canary")
    calls = IDENTITY.calls
    second = await _evaluate(stub, "identity-canary")
    assert second == first
    assert IDENTITY.calls == calls


@pytest.mark.parametrize(
    ("version", "code", "needle"),
    [
        ("nope.v1", grpc.StatusCode.FAILED_PRECONDITION, "not loaded here"),
        ("", grpc.StatusCode.INVALID_ARGUMENT, "model_version is required"),
        ("trained.v1", grpc.StatusCode.FAILED_PRECONDITION, "paints only its 1 trained styles"),
    ],
)
async def test_versions_that_cannot_be_measured(
    stub: inference_pb2_grpc.InferenceServiceStub,
    version: str,
    code: grpc.StatusCode,
    needle: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _evaluate(stub, version)
    assert caught.value.code() == code
    assert needle in (caught.value.details() or "")


async def test_a_token_without_write_models_may_not_evaluate(
    stub: inference_pb2_grpc.InferenceServiceStub,
) -> None:
    user = metadata("read:jobs", "write:jobs", "read:models", "write:webhooks")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _evaluate(stub, "identity-canary", user)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "write:models" in (caught.value.details() or "")


async def test_a_real_adain_canary_beats_the_baseline_on_style() -> None:
    settings = InferenceSettings(
        port=0, models="adain-canary=adain.lite0-v1", runtime="onnx", torch_threads=1
    )
    async with serving(settings) as stub:
        reply = await _evaluate(stub, "adain-canary")
    assert reply.model_version == "adain-canary"
    assert reply.pairs == 4
    assert 0 < reply.style_distance < reply.baseline_style_distance
    assert reply.content_distance > 0
    assert reply.compute_ms > 0
