"""InferenceService over gRPC: converts messages to domain tasks and results back."""

from __future__ import annotations

from collections.abc import Iterable

import grpc

from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.inference.v1 import inference_pb2, inference_pb2_grpc
from gouache.imaging.codec import to_rgb_bytes
from gouache.nst.base import RGBImage
from services.inference.domain import (
    ModelHost,
    Params,
    RawImage,
    RawStyle,
    StylizeTask,
)
from services.inference.metrics import observe_stylize


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    """Thin adapter from InferenceService messages to the ModelHost."""

    def __init__(self, host: ModelHost) -> None:
        self._host = host

    def _served(self) -> set[str]:
        return {model.version for model in self._host.models()}

    async def Stylize(
        self, request: inference_pb2.StylizeRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.StylizeResponse:
        with observe_stylize(request.model_version, self._served()):
            result = await self._host.stylize(
                _task(
                    request.model_version,
                    [request.content],
                    request.styles,
                    request.params,
                    tiled=False,
                )
            )
        return inference_pb2.StylizeResponse(
            image=_rgb(result.images[0]),
            model_version=result.model_version,
            compute_ms=result.compute_ms,
        )

    async def StylizeBatch(
        self, request: inference_pb2.StylizeBatchRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.StylizeBatchResponse:
        with observe_stylize(request.model_version, self._served()):
            result = await self._host.stylize(
                _task(
                    request.model_version, request.tiles, request.styles, request.params, tiled=True
                )
            )
        return inference_pb2.StylizeBatchResponse(
            tiles=[_rgb(image) for image in result.images],
            model_version=result.model_version,
            compute_ms=result.compute_ms,
        )

    async def EvaluateModelVersion(
        self,
        request: inference_pb2.EvaluateModelVersionRequest,
        context: grpc.aio.ServicerContext,
    ) -> inference_pb2.EvaluateModelVersionResponse:
        result = await self._host.evaluate(request.model_version)
        return inference_pb2.EvaluateModelVersionResponse(
            model_version=result.model_version,
            style_distance=result.style_distance,
            content_distance=result.content_distance,
            baseline_style_distance=result.baseline_style_distance,
            baseline_content_distance=result.baseline_content_distance,
            pairs=result.pairs,
            compute_ms=result.compute_ms,
            golden_set=result.golden_set,
        )

    async def ListLoadedModels(
        self, request: inference_pb2.ListLoadedModelsRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.ListLoadedModelsResponse:
        return inference_pb2.ListLoadedModelsResponse(
            models=[
                inference_pb2.LoadedModel(
                    model_version=model.version,
                    family=model.family,
                    device=model.device,
                    ready=model.ready,
                    tile_size=model.tile_size,
                    trained_styles_only=model.trained_styles_only,
                )
                for model in self._host.models()
            ]
        )


def _task(
    model_version: str,
    images: Iterable[common_pb2.RgbImage],
    styles: Iterable[inference_pb2.StyleInput],
    params: common_pb2.StylizeParams,
    *,
    tiled: bool,
) -> StylizeTask:
    return StylizeTask(
        model_version=model_version,
        images=tuple(_raw(image) for image in images),
        styles=tuple(RawStyle(key=style.style_key, image=_raw(style.image)) for style in styles),
        params=Params(
            alpha=params.alpha if params.HasField("alpha") else None,
            tv_weight=params.tv_weight if params.HasField("tv_weight") else None,
            luminance_only=params.luminance_only,
            histogram_match=params.histogram_match,
            seed=params.seed if params.HasField("seed") else None,
            weights=tuple(params.weights),
        ),
        tiled=tiled,
    )


def _raw(image: common_pb2.RgbImage) -> RawImage:
    return RawImage(width=image.width, height=image.height, pixels=image.pixels)


def _rgb(pixels: RGBImage) -> common_pb2.RgbImage:
    width, height, data = to_rgb_bytes(pixels)
    return common_pb2.RgbImage(width=width, height=height, pixels=data)
