"""gRPC adapters for the storage and inference calls a job needs, made as this service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import cast

import grpc

from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.inference.v1 import inference_pb2, inference_pb2_grpc
from gouache.contracts.storage.v1 import storage_pb2, storage_pb2_grpc
from gouache.imaging.codec import from_rgb_bytes, to_rgb_bytes
from gouache.runtime.clients import CallOptions, ServiceTokenSource
from gouache.runtime.errors import FailedPrecondition, from_rpc_error
from services.tiling.domain import JobParams, Pixels, StoredImage, StyleInput

UPLOAD_CHUNK_BYTES = 1024 * 1024


class StaticTokenSource:
    """A fixed bearer token (tests and development: the `service_token` setting)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        """Returns the configured token."""
        return self._token


def call_options(tokens: ServiceTokenSource | StaticTokenSource, timeout_s: float) -> CallOptions:
    """CallOptions over either token source (both answer `await token()`)."""
    return CallOptions(cast(ServiceTokenSource, tokens), timeout_s)


class GrpcStorage:
    """StorageService calls as a service: download inputs, upload the result."""

    def __init__(self, channel: grpc.aio.Channel, calls: CallOptions) -> None:
        self._stub = storage_pb2_grpc.StorageServiceStub(channel)
        self._calls = calls

    async def download(self, image_id: str) -> bytes:
        """Returns an image's encoded bytes, streamed in chunks."""
        parts: list[bytes] = []
        try:
            stream = self._stub.DownloadImage(
                storage_pb2.DownloadImageRequest(image_id=image_id), **await self._calls()
            )
            async for part in stream:
                parts.append(part.chunk)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, context=f"downloading image {image_id}") from exc
        return b"".join(parts)

    async def upload(
        self,
        *,
        image_id: str,
        owner_id: str,
        filename: str,
        content_type: str,
        data: bytes,
        metadata_json: str,
    ) -> StoredImage:
        """Stores a result under a chosen id for its owner (idempotent by id and bytes)."""
        header = storage_pb2.UploadImageHeader(
            filename=filename,
            content_type=content_type,
            kind="result",
            image_id=image_id,
            owner_id=owner_id,
            metadata_json=metadata_json,
        )

        async def requests() -> AsyncIterator[storage_pb2.UploadImageRequest]:
            yield storage_pb2.UploadImageRequest(header=header)
            for start in range(0, len(data), UPLOAD_CHUNK_BYTES):
                yield storage_pb2.UploadImageRequest(chunk=data[start : start + UPLOAD_CHUNK_BYTES])

        try:
            response = await self._stub.UploadImage(requests(), **await self._calls())
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, context=f"storing result {image_id}") from exc
        image = response.image
        return StoredImage(image_id=image.image_id, width=image.width, height=image.height)


class GrpcInference:
    """InferenceService.StylizeBatch as a service, with its own (long) deadline."""

    def __init__(self, channel: grpc.aio.Channel, calls: CallOptions, timeout_s: float) -> None:
        self._stub = inference_pb2_grpc.InferenceServiceStub(channel)
        self._calls = calls
        self._timeout_s = timeout_s
        self._models: dict[str, inference_pb2.LoadedModel] = {}

    async def _model(self, model_version: str) -> inference_pb2.LoadedModel | None:
        """What inference reports about a version (cached once seen), None if it has none."""
        if model_version not in self._models:
            try:
                response = await self._stub.ListLoadedModels(
                    inference_pb2.ListLoadedModelsRequest(), **await self._calls()
                )
            except grpc.aio.AioRpcError as exc:
                raise from_rpc_error(exc, context="listing inference's model versions") from exc
            self._models.update({model.model_version: model for model in response.models})
        return self._models.get(model_version)

    async def tile_size(self, model_version: str) -> int | None:
        """The version's default tile edge as inference reports it, None if unknown."""
        model = await self._model(model_version)
        return model.tile_size if model is not None and model.tile_size else None

    async def trained_styles_only(self, model_version: str) -> bool:
        """Whether the version paints only its trained styles (so styles are not recoloured)."""
        model = await self._model(model_version)
        return model is not None and model.trained_styles_only

    async def stylize_batch(
        self,
        model_version: str,
        tiles: Sequence[Pixels],
        styles: Sequence[StyleInput],
        params: JobParams,
    ) -> list[Pixels]:
        """Stylizes tiles of one image; outputs in input order."""
        request = inference_pb2.StylizeBatchRequest(
            model_version=model_version,
            tiles=[_rgb(tile) for tile in tiles],
            styles=[
                inference_pb2.StyleInput(style_key=style.key, image=_rgb(style.pixels))
                for style in styles
            ],
            params=stylize_params(params),
        )
        try:
            response = await self._stub.StylizeBatch(
                request, **await self._calls(timeout_s=self._timeout_s)
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, context=f"stylizing with {model_version}") from exc
        if len(response.tiles) != len(tiles):
            raise FailedPrecondition(
                f"inference returned {len(response.tiles)} tiles for {len(tiles)} sent"
            )
        return [from_rgb_bytes(tile.width, tile.height, tile.pixels) for tile in response.tiles]


def stylize_params(params: JobParams) -> common_pb2.StylizeParams:
    """The job's parameters as sent to inference; unset optional fields stay unset."""
    message = common_pb2.StylizeParams(
        luminance_only=params.luminance_only,
        histogram_match=params.histogram_match,
        weights=list(params.weights),
        output_format=params.output_format,
    )
    if params.alpha is not None:
        message.alpha = params.alpha
    if params.tv_weight is not None:
        message.tv_weight = params.tv_weight
    if params.seed is not None:
        message.seed = params.seed
    if params.prompt is not None:
        message.prompt = params.prompt
    return message


def _rgb(pixels: Pixels) -> common_pb2.RgbImage:
    width, height, data = to_rgb_bytes(pixels)
    return common_pb2.RgbImage(width=width, height=height, pixels=data)
