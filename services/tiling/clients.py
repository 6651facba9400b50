"""gRPC adapters for the storage and inference calls a job needs, made as this service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import cast

import grpc

from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.inference.v1 import inference_pb2, inference_pb2_grpc
from gouache.contracts.storage.v1 import storage_pb2, storage_pb2_grpc
from gouache.imaging.codec import from_rgb_bytes, to_rgb_bytes
from gouache.results import ResultLink
from gouache.runtime.clients import CallOptions, ServiceTokenSource, open_channel
from gouache.runtime.errors import FailedPrecondition, from_rpc_error
from services.tiling.domain import JobParams, Pixels, StoredImage, StyleInput

logger = logging.getLogger(__name__)

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
        link_ttl_s: int = 0,
    ) -> StoredImage:
        """Stores a result under a chosen id for its owner (idempotent by id and bytes),
        with a signed GET URL valid link_ttl_s when that is not 0."""
        header = storage_pb2.UploadImageHeader(
            filename=filename,
            content_type=content_type,
            kind="result",
            image_id=image_id,
            owner_id=owner_id,
            metadata_json=metadata_json,
            download_url_ttl_seconds=link_ttl_s,
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
        link = None
        if response.download_url:
            link = ResultLink.from_timestamps(
                response.download_url,
                response.download_url_expires_at,
                image.expires_at if image.HasField("expires_at") else None,
            )
        return StoredImage(
            image_id=image.image_id, width=image.width, height=image.height, link=link
        )


@dataclass
class _InferenceEndpoint:
    """One inference server: its channel, stub, and the versions it reported (cached)."""

    channel: grpc.aio.Channel
    stub: inference_pb2_grpc.InferenceServiceStub
    models: dict[str, inference_pb2.LoadedModel] = field(default_factory=dict)


class GrpcInference:
    """InferenceService calls as a service, to the default inference or a version's own.

    A job names its version's endpoint (from its JobCreated event) or "" for the default.
    Each endpoint gets one channel, opened on first use and reused by every later job;
    what it reports about its versions (ListLoadedModels) is cached per endpoint, since
    two servers may load the same version name differently. close() closes them all.
    """

    def __init__(
        self,
        default_endpoint: str,
        calls: CallOptions,
        timeout_s: float,
        *,
        max_message_bytes: int = 64 * 1024 * 1024,
        connect: Callable[[str], grpc.aio.Channel] | None = None,
    ) -> None:
        self._default = default_endpoint
        self._calls = calls
        self._timeout_s = timeout_s
        self._connect = connect or partial(open_channel, max_message_bytes=max_message_bytes)
        self._endpoints: dict[str, _InferenceEndpoint] = {}

    @property
    def endpoints(self) -> list[str]:
        """The endpoints with an open channel, in the order they were first used."""
        return list(self._endpoints)

    def _endpoint(self, endpoint: str) -> _InferenceEndpoint:
        target = endpoint or self._default
        found = self._endpoints.get(target)
        if found is None:
            channel = self._connect(target)
            found = _InferenceEndpoint(channel, inference_pb2_grpc.InferenceServiceStub(channel))
            self._endpoints[target] = found
            if target != self._default:
                logger.info("inference endpoint opened", extra={"inference_endpoint": target})
        return found

    async def close(self) -> None:
        """Closes every channel opened so far."""
        opened, self._endpoints = self._endpoints, {}
        for endpoint in opened.values():
            await endpoint.channel.close()

    async def _model(self, model_version: str, endpoint: str) -> inference_pb2.LoadedModel | None:
        """What an endpoint reports about a version (cached once seen), None if it has none."""
        server = self._endpoint(endpoint)
        if model_version not in server.models:
            try:
                response = await server.stub.ListLoadedModels(
                    inference_pb2.ListLoadedModelsRequest(), **await self._calls()
                )
            except grpc.aio.AioRpcError as exc:
                raise from_rpc_error(
                    exc, context=f"listing the model versions of {endpoint or 'inference'}"
                ) from exc
            server.models.update({model.model_version: model for model in response.models})
        return server.models.get(model_version)

    async def tile_size(self, model_version: str, endpoint: str = "") -> int | None:
        """The version's default tile edge as its endpoint reports it, None if unknown."""
        model = await self._model(model_version, endpoint)
        return model.tile_size if model is not None and model.tile_size else None

    async def trained_styles_only(self, model_version: str, endpoint: str = "") -> bool:
        """Whether the version paints only its trained styles (so styles are not recoloured)."""
        model = await self._model(model_version, endpoint)
        return model is not None and model.trained_styles_only

    async def device(self, model_version: str, endpoint: str = "") -> str:
        """The device kind the endpoint runs the version on ("cpu", "cuda"), "" if unknown."""
        model = await self._model(model_version, endpoint)
        return model.device if model is not None else ""

    async def stylize_batch(
        self,
        model_version: str,
        tiles: Sequence[Pixels],
        styles: Sequence[StyleInput],
        params: JobParams,
        *,
        endpoint: str = "",
    ) -> list[Pixels]:
        """Stylizes tiles of one image at the version's endpoint; outputs in input order."""
        request = inference_pb2.StylizeBatchRequest(
            model_version=model_version,
            tiles=[_rgb(tile) for tile in tiles],
            styles=[
                inference_pb2.StyleInput(style_key=style.key, image=_rgb(style.pixels))
                for style in styles
            ],
            params=stylize_params(params),
        )
        stub = self._endpoint(endpoint).stub
        try:
            response = await stub.StylizeBatch(
                request, **await self._calls(timeout_s=self._timeout_s)
            )
        except grpc.aio.AioRpcError as exc:
            where = f" at {endpoint}" if endpoint else ""
            raise from_rpc_error(exc, context=f"stylizing with {model_version}{where}") from exc
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
