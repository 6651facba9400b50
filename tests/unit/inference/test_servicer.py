"""InferenceService on an in-process server with the real gatys.lite0-fast on tiny images."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.inference.v1 import inference_pb2, inference_pb2_grpc
from gouache.nst.base import Cancellation, RGBImage, StylizeControls
from gouache.runtime.auth import TokenVerifier
from gouache.runtime.server import RunningService, start_service
from services.inference.server import SERVICE_NAME, build
from services.inference.settings import InferenceSettings
from tests.fixtures.nats import free_port
from tests.helpers.tokens import TestSigner

FAST = "gatys.lite0-fast"
SIGNER = TestSigner()
MAX_PIXELS = 96 * 96


def _service_auth() -> tuple[tuple[str, str], ...]:
    token = SIGNER.token("usr_tiling", role="service", scopes=("internal",))
    return (("authorization", f"Bearer {token}"),)


def _image(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _rgb(pixels: np.ndarray) -> common_pb2.RgbImage:
    height, width = pixels.shape[:2]
    return common_pb2.RgbImage(width=width, height=height, pixels=pixels.tobytes())


def _pixels(image: common_pb2.RgbImage) -> np.ndarray:
    return np.frombuffer(image.pixels, np.uint8).reshape(image.height, image.width, 3)


def _style(seed: int = 1, side: int = 48) -> inference_pb2.StyleInput:
    return inference_pb2.StyleInput(style_key=f"style-{seed}", image=_rgb(_image(side, side, seed)))


CONTENT = _image(64, 48, seed=0)


@pytest.fixture(scope="module")
async def stub() -> AsyncIterator[inference_pb2_grpc.InferenceServiceStub]:
    settings = InferenceSettings(port=0, models=FAST, max_pixels=MAX_PIXELS, torch_threads=1)
    spec, verifier = await build(settings, verifier=TokenVerifier(SIGNER.fetch))
    running = await start_service(settings, spec, verifier)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield inference_pb2_grpc.InferenceServiceStub(channel)
    await running.stop(0)


def _request(**changes: object) -> inference_pb2.StylizeRequest:
    """A valid StylizeRequest with some fields replaced."""
    request = inference_pb2.StylizeRequest(
        model_version=FAST, content=_rgb(CONTENT), styles=[_style()]
    )
    for name, value in changes.items():
        if name == "styles":
            del request.styles[:]
            request.styles.extend(value)  # type: ignore[arg-type]
        elif name in ("content", "params"):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    return request


async def _stylize(
    stub: inference_pb2_grpc.InferenceServiceStub, **changes: object
) -> inference_pb2.StylizeResponse:
    response: inference_pb2.StylizeResponse = await stub.Stylize(
        _request(**changes), metadata=_service_auth(), timeout=120
    )
    return response


SEEDED = common_pb2.StylizeParams(seed=3, weights=[3.0, 1.0])
SEEDED_STYLES = [_style(1), _style(2, side=40)]


@pytest.fixture(scope="module")
async def seeded(
    stub: inference_pb2_grpc.InferenceServiceStub,
) -> inference_pb2.StylizeResponse:
    """One real stylization with two weighted styles, shared by the tests that inspect it."""
    return await _stylize(stub, params=SEEDED, styles=SEEDED_STYLES)


async def test_stylize_returns_an_image_of_the_content_size(
    seeded: inference_pb2.StylizeResponse,
) -> None:
    assert (seeded.image.width, seeded.image.height) == (64, 48)
    assert len(seeded.image.pixels) == 64 * 48 * 3
    assert seeded.model_version == FAST
    assert seeded.compute_ms > 0
    assert not np.array_equal(_pixels(seeded.image), CONTENT)


async def test_same_seed_gives_the_same_bytes(
    stub: inference_pb2_grpc.InferenceServiceStub, seeded: inference_pb2.StylizeResponse
) -> None:
    again = await _stylize(stub, params=SEEDED, styles=SEEDED_STYLES)
    assert again.image.pixels == seeded.image.pixels


async def test_alpha_zero_returns_the_content(
    stub: inference_pb2_grpc.InferenceServiceStub,
) -> None:
    response = await _stylize(stub, params=common_pb2.StylizeParams(alpha=0.0))
    np.testing.assert_array_equal(_pixels(response.image), CONTENT)


async def test_batch_returns_tiles_in_order_with_their_sizes(
    stub: inference_pb2_grpc.InferenceServiceStub,
) -> None:
    tiles = [_image(48, 48, seed=5), _image(64, 40, seed=6), _image(40, 64, seed=7)]
    response = await stub.StylizeBatch(
        inference_pb2.StylizeBatchRequest(
            model_version=FAST,
            tiles=[_rgb(tile) for tile in tiles],
            styles=[_style()],
            params=common_pb2.StylizeParams(alpha=0.0),
        ),
        metadata=_service_auth(),
        timeout=120,
    )
    assert response.model_version == FAST
    assert len(response.tiles) == 3
    for sent, got in zip(tiles, response.tiles, strict=True):
        np.testing.assert_array_equal(_pixels(got), sent)


async def test_batch_tile_matches_the_single_call(
    stub: inference_pb2_grpc.InferenceServiceStub, seeded: inference_pb2.StylizeResponse
) -> None:
    batch = await stub.StylizeBatch(
        inference_pb2.StylizeBatchRequest(
            model_version=FAST, tiles=[_rgb(CONTENT)], styles=SEEDED_STYLES, params=SEEDED
        ),
        metadata=_service_auth(),
        timeout=120,
    )
    assert batch.tiles[0].pixels == seeded.image.pixels


async def test_list_loaded_models(stub: inference_pb2_grpc.InferenceServiceStub) -> None:
    reply = await stub.ListLoadedModels(
        inference_pb2.ListLoadedModelsRequest(),
        metadata=(("authorization", f"Bearer {SIGNER.token(scopes=())}"),),
    )
    assert [(m.model_version, m.family, m.device, m.ready) for m in reply.models] == [
        (FAST, "gatys", "cpu", True)
    ]


def _bad_requests() -> list[tuple[str, inference_pb2.StylizeRequest, grpc.StatusCode, str]]:
    request = _request
    short = common_pb2.RgbImage(width=64, height=48, pixels=CONTENT.tobytes()[:-3])
    big = _rgb(_image(97, 96, seed=9))
    return [
        (
            "wrong pixel length",
            request(content=short),
            grpc.StatusCode.INVALID_ARGUMENT,
            "needs 9216",
        ),
        (
            "zero size",
            request(content=common_pb2.RgbImage(width=0, height=48)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "must be positive",
        ),
        (
            "unknown version",
            request(model_version="adain.vgg-9"),
            grpc.StatusCode.FAILED_PRECONDITION,
            f"model version adain.vgg-9 is not loaded here; loaded: {FAST}",
        ),
        (
            "no version",
            request(model_version=""),
            grpc.StatusCode.INVALID_ARGUMENT,
            "model_version is required",
        ),
        ("no styles", request(styles=[]), grpc.StatusCode.INVALID_ARGUMENT, "between 1 and 4"),
        (
            "five styles",
            request(styles=[_style(i) for i in range(5)]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "got 5",
        ),
        (
            "bad style pixels",
            request(styles=[inference_pb2.StyleInput(image=short)]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "styles[0].image",
        ),
        (
            "oversize content",
            request(content=big),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"at most {MAX_PIXELS} pixels",
        ),
        (
            "oversize style",
            request(styles=[inference_pb2.StyleInput(image=big)]),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "styles[0].image",
        ),
        (
            "weights count",
            request(params=common_pb2.StylizeParams(weights=[1.0, 2.0])),
            grpc.StatusCode.INVALID_ARGUMENT,
            "2 weights for 1 styles",
        ),
        (
            "negative weight",
            request(
                styles=[_style(1), _style(2)], params=common_pb2.StylizeParams(weights=[1, -1])
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "non-negative",
        ),
        (
            "zero weights",
            request(params=common_pb2.StylizeParams(weights=[0.0])),
            grpc.StatusCode.INVALID_ARGUMENT,
            "positive number",
        ),
        (
            "alpha above one",
            request(params=common_pb2.StylizeParams(alpha=1.5)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "alpha must be between 0 and 1",
        ),
        (
            "negative tv weight",
            request(params=common_pb2.StylizeParams(tv_weight=-1.0)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "tv_weight",
        ),
    ]


@pytest.mark.parametrize(
    ("request_message", "code", "needle"),
    [case[1:] for case in _bad_requests()],
    ids=[case[0] for case in _bad_requests()],
)
async def test_bad_stylize_requests(
    stub: inference_pb2_grpc.InferenceServiceStub,
    request_message: inference_pb2.StylizeRequest,
    code: grpc.StatusCode,
    needle: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Stylize(request_message, metadata=_service_auth(), timeout=30)
    assert caught.value.code() == code
    assert needle in (caught.value.details() or "")


async def test_empty_batch_is_invalid(stub: inference_pb2_grpc.InferenceServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.StylizeBatch(
            inference_pb2.StylizeBatchRequest(model_version=FAST, styles=[_style()]),
            metadata=_service_auth(),
            timeout=30,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at least one image" in (caught.value.details() or "")


async def test_batch_with_a_bad_tile_names_it(
    stub: inference_pb2_grpc.InferenceServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.StylizeBatch(
            inference_pb2.StylizeBatchRequest(
                model_version=FAST,
                tiles=[_rgb(CONTENT), common_pb2.RgbImage(width=4, height=4, pixels=b"x")],
                styles=[_style()],
            ),
            metadata=_service_auth(),
            timeout=30,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tiles[1]" in (caught.value.details() or "")


async def test_users_cannot_call_stylize(stub: inference_pb2_grpc.InferenceServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Stylize(
            inference_pb2.StylizeRequest(model_version=FAST),
            metadata=(("authorization", f"Bearer {SIGNER.token()}"),),
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


class _GatedFamily:
    """A family whose stylize blocks until released: stands in for a slow warm-up."""

    name = "gated"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def stylize(
        self,
        content: RGBImage,
        styles: Sequence[RGBImage],
        weights: Sequence[float],
        controls: StylizeControls,
        *,
        style_keys: Sequence[str] | None = None,
        cancellation: Cancellation | None = None,
    ) -> RGBImage:
        self.entered.set()
        assert self.release.wait(timeout=30)
        return content.copy()


async def _health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=2
        )
    return int(reply.status)


async def test_serving_only_after_warm_up_and_health_answers_while_computing() -> None:
    family = _GatedFamily()
    port = free_port()
    settings = InferenceSettings(port=port, models="gated.v1")
    spec, verifier = await build(
        settings, verifier=TokenVerifier(SIGNER.fetch), builder=lambda version, device: family
    )
    starting = asyncio.create_task(start_service(settings, spec, verifier))
    assert await asyncio.to_thread(family.entered.wait, 30)
    # The warm-up is running and blocked: the port is bound, health must say NOT_SERVING.
    assert await _health(port) == health_pb2.HealthCheckResponse.NOT_SERVING
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        models = await inference_pb2_grpc.InferenceServiceStub(channel).ListLoadedModels(
            inference_pb2.ListLoadedModelsRequest(),
            metadata=(("authorization", f"Bearer {SIGNER.token(scopes=())}"),),
            timeout=2,
        )
    assert [(m.model_version, m.ready) for m in models.models] == [("gated.v1", False)]
    family.release.set()
    running: RunningService = await asyncio.wait_for(starting, timeout=30)
    try:
        assert await _health(running.port) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await running.stop(0)
