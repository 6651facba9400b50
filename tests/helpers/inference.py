"""A stand-in InferenceService on 127.0.0.1 port 0: inverts tiles and records who called."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np

from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.inference.v1 import inference_pb2, inference_pb2_grpc


@dataclass
class StylizeCall:
    """One StylizeBatch as the fake saw it."""

    model_version: str
    tiles: int
    authorization: str


@dataclass
class FakeInferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    """Serves `models` (version -> tile size); every output tile is 255 - input."""

    models: Mapping[str, int]
    calls: list[StylizeCall] = field(default_factory=list)
    listings: int = 0

    async def ListLoadedModels(
        self, request: inference_pb2.ListLoadedModelsRequest, context: Any
    ) -> inference_pb2.ListLoadedModelsResponse:
        self.listings += 1
        return inference_pb2.ListLoadedModelsResponse(
            models=[
                inference_pb2.LoadedModel(model_version=name, ready=True, tile_size=size)
                for name, size in self.models.items()
            ]
        )

    async def StylizeBatch(
        self, request: inference_pb2.StylizeBatchRequest, context: Any
    ) -> inference_pb2.StylizeBatchResponse:
        metadata = dict(context.invocation_metadata() or ())
        self.calls.append(
            StylizeCall(
                model_version=request.model_version,
                tiles=len(request.tiles),
                authorization=str(metadata.get("authorization", "")),
            )
        )
        if request.model_version not in self.models:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"model version {request.model_version} is not loaded"
            )
        tiles = []
        for tile in request.tiles:
            pixels = np.frombuffer(tile.pixels, dtype=np.uint8)
            tiles.append(
                common_pb2.RgbImage(
                    width=tile.width, height=tile.height, pixels=(255 - pixels).tobytes()
                )
            )
        return inference_pb2.StylizeBatchResponse(tiles=tiles, model_version=request.model_version)


@dataclass
class FakeInferenceServer:
    """A running fake and its address."""

    server: grpc.aio.Server
    servicer: FakeInferenceServicer
    address: str

    @classmethod
    async def start(cls, models: Mapping[str, int]) -> FakeInferenceServer:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ]
        )
        servicer = FakeInferenceServicer(models)
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return cls(server, servicer, f"127.0.0.1:{port}")

    async def stop(self) -> None:
        await self.server.stop(0)
