"""GOUACHE_INFERENCE_MODELS entries `name=model`: a registry model served under a version name."""

from __future__ import annotations

import grpc
import pytest
from pydantic import ValidationError

from gouache.contracts.inference.v1 import inference_pb2
from services.inference.domain import ModelHost
from services.inference.settings import InferenceSettings
from tests.unit.inference.fakes import (
    IdentityFamily,
    TrainedOnlyFamily,
    builder_of,
    metadata,
    service,
    serving,
    stylize_request,
)


def test_entries_map_served_names_to_models() -> None:
    settings = InferenceSettings(models=" adain-canary = adain.lite0-v1 ,, gatys.lite0-fast")
    assert settings.served_models() == {
        "adain-canary": "adain.lite0-v1",
        "gatys.lite0-fast": "gatys.lite0-fast",
    }
    assert settings.model_versions() == ["adain-canary", "gatys.lite0-fast"]


@pytest.mark.parametrize(
    ("models", "needle"),
    [
        ("a.v1,a.v1", "version name 'a.v1' is served twice"),
        ("canary=a.v1,canary=b.v1", "version name 'canary' is served twice"),
        ("Canary=a.v1", "version name 'Canary' must match"),
        ("canary=", "model '' must match"),
        ("=a.v1", "version name '' must match"),
        ("canary=a=b", "model 'a=b' must match"),
        ("my canary=a.v1", "version name 'my canary' must match"),
        ("-canary=a.v1", "version name '-canary' must match"),
        ("x" * 65, "must match"),
    ],
)
def test_bad_entries_are_refused_at_start(models: str, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        InferenceSettings(models=models)


async def test_the_model_is_built_and_describes_the_served_version() -> None:
    built: list[str] = []
    trained = TrainedOnlyFamily()
    host = ModelHost(
        {"canary": "trained.v1", "trained.v1": "trained.v1"},
        device="cpu",
        builder=builder_of({"trained.v1": trained}, built),
        tile_size_of={"trained.v1": 320}.__getitem__,
    )
    await host.load_all()
    assert built == ["trained.v1", "trained.v1"]
    assert [(m.version, m.model, m.tile_size, m.trained_styles_only) for m in host.models()] == [
        ("canary", "trained.v1", 320, True),
        ("trained.v1", "trained.v1", 320, True),
    ]


async def test_requests_and_the_list_use_the_served_name() -> None:
    settings = InferenceSettings(port=0, models="fake-canary=fake.v1")
    async with serving(settings, {"fake.v1": IdentityFamily()}) as stub:
        listed = await stub.ListLoadedModels(
            inference_pb2.ListLoadedModelsRequest(), metadata=metadata(), timeout=10
        )
        assert [(m.model_version, m.family, m.ready) for m in listed.models] == [
            ("fake-canary", "identity", True)
        ]
        reply = await stub.Stylize(stylize_request("fake-canary"), metadata=service(), timeout=10)
        assert reply.model_version == "fake-canary"
        assert (reply.image.width, reply.image.height) == (16, 12)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Stylize(stylize_request("fake.v1"), metadata=service(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "loaded: fake-canary" in (caught.value.details() or "")
