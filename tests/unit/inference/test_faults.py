"""GOUACHE_INFERENCE_FAULTS (tests only): injected delays and INTERNAL failures per version."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time

import grpc
import pytest
from pydantic import ValidationError

from gouache.contracts.inference.v1 import inference_pb2
from gouache.runtime.errors import Internal
from services.inference.domain import Fault, ModelHost, Params, RawImage, RawStyle, StylizeTask
from services.inference.settings import InferenceSettings
from tests.unit.inference.fakes import (
    IdentityFamily,
    batch_request,
    builder_of,
    metadata,
    operator,
    service,
    serving,
    stylize_request,
)

INJECTED = "injected by GOUACHE_INFERENCE_FAULTS"
DELAY_MS = 500


@pytest.mark.parametrize(
    ("faults", "needle"),
    [
        ('{"other.v1": {"error_rate": 1.0}}', "other.v1 that this server does not serve"),
        ('{"fake.v1": {"error_rate": 1.5}}', "less than or equal to 1"),
        ('{"fake.v1": {"error_rate": -0.1}}', "greater than or equal to 0"),
        ('{"fake.v1": {"delay_ms": -5}}', "greater than or equal to 0"),
        ('{"fake.v1": {"error_rat": 0.5}}', "Extra inputs are not permitted"),
        ('["fake.v1"]', "faults must be a JSON object"),
        ("fake.v1=1.0", "faults must be a JSON object"),
    ],
)
def test_bad_faults_stop_the_service_at_start(
    faults: str, needle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOUACHE_INFERENCE_MODELS", "fake.v1")
    monkeypatch.setenv("GOUACHE_INFERENCE_FAULTS", faults)
    with pytest.raises(ValidationError, match=needle):
        InferenceSettings()


def test_faults_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOUACHE_INFERENCE_MODELS", "canary=fake.v1")
    monkeypatch.setenv("GOUACHE_INFERENCE_FAULTS", '{"canary": {"error_rate": 0.25}}')
    fault = InferenceSettings().faults["canary"]
    assert (fault.error_rate, fault.delay_ms) == (0.25, 0)
    monkeypatch.setenv("GOUACHE_INFERENCE_FAULTS", "")
    assert InferenceSettings().faults == {}


def test_the_host_refuses_faults_for_versions_it_does_not_serve() -> None:
    with pytest.raises(ValueError, match=r"other\.v1"):
        ModelHost(
            ["fake.v1"],
            device="cpu",
            builder=builder_of({}),
            faults={"other.v1": Fault(error_rate=1.0)},
        )


def _task(version: str) -> StylizeTask:
    image = RawImage(4, 4, bytes(48))
    return StylizeTask(version, (image,), (RawStyle("s", image),), Params())


async def test_a_seeded_rng_fails_the_calls_it_draws() -> None:
    host = ModelHost(
        ["fake.v1"],
        device="cpu",
        builder=builder_of({"fake.v1": IdentityFamily()}),
        faults={"fake.v1": Fault(error_rate=0.5)},
        rng=random.Random(7),
    )
    await host.load_all()
    outcomes = []
    for _ in range(40):
        try:
            await host.stylize(_task("fake.v1"))
            outcomes.append(True)
        except Internal:
            outcomes.append(False)
    expected = random.Random(7)
    assert outcomes == [expected.random() >= 0.5 for _ in range(40)]
    assert 0 < outcomes.count(False) < 40


async def test_faulted_versions_fail_slow_down_or_pass(caplog: pytest.LogCaptureFixture) -> None:
    settings = InferenceSettings.model_validate(
        {
            "port": 0,
            "models": "bad=fake.v1,slow=fake.v1,good=fake.v1",
            "faults": json.dumps(
                {"bad": {"error_rate": 1.0}, "slow": {"delay_ms": DELAY_MS}, "good": {}}
            ),
        }
    )
    with caplog.at_level(logging.WARNING, logger="services.inference.domain"):
        async with serving(settings, {"fake.v1": IdentityFamily()}) as stub:
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert any("GOUACHE_INFERENCE_FAULTS" in r.getMessage() for r in warnings)
            assert any(getattr(r, "faults", {}).get("bad") for r in warnings)

            for call in (
                stub.Stylize(stylize_request("bad"), metadata=service(), timeout=10),
                stub.StylizeBatch(batch_request("bad"), metadata=service(), timeout=10),
                stub.EvaluateModelVersion(
                    inference_pb2.EvaluateModelVersionRequest(model_version="bad"),
                    metadata=operator(),
                    timeout=10,
                ),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call
                assert caught.value.code() == grpc.StatusCode.INTERNAL
                assert INJECTED in (caught.value.details() or "")

            for _ in range(20):
                reply = await stub.Stylize(stylize_request("good"), metadata=service(), timeout=10)
                assert reply.model_version == "good"

            started = time.perf_counter()
            slow = asyncio.ensure_future(
                stub.Stylize(stylize_request("slow"), metadata=service(), timeout=10)
            )
            # The delay sleeps on the event loop, so other calls are answered meanwhile.
            await stub.ListLoadedModels(
                inference_pb2.ListLoadedModelsRequest(), metadata=metadata(), timeout=10
            )
            assert not slow.done()
            assert (await slow).model_version == "slow"
            assert time.perf_counter() - started >= DELAY_MS / 1000
