"""TilingService over gRPC: tile plans and the worker's status."""

from __future__ import annotations

import grpc

from gouache.contracts.tiling.v1 import tiling_pb2, tiling_pb2_grpc
from services.tiling.domain import WorkerStatus, plan_image


class TilingServicer(tiling_pb2_grpc.TilingServiceServicer):
    """Thin adapter from TilingService messages to the tile planner and worker status."""

    def __init__(self, status: WorkerStatus, *, default_tile_size: int) -> None:
        self._status = status
        self._default_tile_size = default_tile_size

    async def PlanTiles(
        self, request: tiling_pb2.PlanTilesRequest, context: grpc.aio.ServicerContext
    ) -> tiling_pb2.PlanTilesResponse:
        plan = plan_image(
            request.width,
            request.height,
            request.tile_size or self._default_tile_size,
            request.overlap,
            field_prefix="",
        )
        return tiling_pb2.PlanTilesResponse(
            tiles=[
                tiling_pb2.Tile(x=tile.x, y=tile.y, width=tile.width, height=tile.height)
                for tile in plan.tiles
            ]
        )

    async def GetWorkerStatus(
        self, request: tiling_pb2.GetWorkerStatusRequest, context: grpc.aio.ServicerContext
    ) -> tiling_pb2.GetWorkerStatusResponse:
        status = self._status
        return tiling_pb2.GetWorkerStatusResponse(
            running_job_ids=list(status.running_job_ids),
            jobs_succeeded=status.jobs_succeeded,
            jobs_failed=status.jobs_failed,
            redeliveries=status.redeliveries,
        )
