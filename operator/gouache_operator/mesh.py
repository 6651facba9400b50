"""The operator's calls to the mesh, through its contracts: routing, stats, readiness, quality."""

from __future__ import annotations

import json
from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from gouache.catalogue import CatalogueEntry
from gouache.contracts.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from gouache.contracts.inference.v1 import inference_pb2, inference_pb2_grpc
from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from gouache.runtime.clients import CallOptions, ServiceTokenSource, open_channel
from gouache.runtime.errors import GouacheError, from_rpc_error
from gouache_operator.domain.analysis import Quality, VersionStats
from gouache_operator.domain.rollout import Route
from gouache_operator.settings import OperatorSettings

# Codes that say the measurement itself failed (a broken version), not that the call did.
_MEASURED_FAILURE = frozenset(
    {
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNKNOWN,
    }
)


class MeshClient:
    """gRPC clients of jobs, feedback and every inference endpoint, with one service token."""

    def __init__(self, settings: OperatorSettings) -> None:
        self._settings = settings
        self._credentials = settings.channel_credentials()
        self._auth = open_channel(settings.auth_addr, credentials=self._credentials)
        self._jobs_channel = open_channel(settings.jobs_addr, credentials=self._credentials)
        self._feedback_channel = open_channel(settings.feedback_addr, credentials=self._credentials)
        self._jobs = jobs_pb2_grpc.JobsServiceStub(self._jobs_channel)
        self._feedback = feedback_pb2_grpc.FeedbackServiceStub(self._feedback_channel)
        self._calls = CallOptions(
            ServiceTokenSource(self._auth, settings.api_key), settings.call_timeout_s
        )
        self._inference: dict[str, grpc.aio.Channel] = {}

    async def close(self) -> None:
        """Closes every channel."""
        for channel in (self._auth, self._jobs_channel, self._feedback_channel):
            await channel.close()
        for channel in self._inference.values():
            await channel.close()
        self._inference.clear()

    def _inference_stub(self, endpoint: str) -> inference_pb2_grpc.InferenceServiceStub:
        target = endpoint or self._settings.default_inference_addr
        channel = self._inference.get(target)
        if channel is None:
            channel = self._inference[target] = open_channel(target, credentials=self._credentials)
        return inference_pb2_grpc.InferenceServiceStub(channel)

    async def routes(self) -> dict[str, Route]:
        """Every alias and its weighted targets, as the jobs routing table holds them."""
        try:
            reply = await self._jobs.ListModels(jobs_pb2.ListModelsRequest(), **await self._calls())
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, context="reading the routing table") from exc
        return {
            route.alias: tuple((t.model_version, t.weight) for t in route.targets)
            for route in reply.routes
        }

    async def register(self, version: str, entry: CatalogueEntry, description: str) -> None:
        """Registers a version in the routing table (idempotent for the same definition).

        ALREADY_EXISTS (the name was registered with another definition) is raised as the
        domain error, for the resource's condition.
        """
        message = jobs_pb2.ModelVersion(
            name=version,
            family=entry.family,
            encoder=entry.encoder,
            tile_size=entry.tile_size,
            config_json=json.dumps({"eta_seconds": entry.eta_seconds}, sort_keys=True),
            description=description[:1000],
        )
        try:
            await self._jobs.RegisterModelVersion(
                jobs_pb2.RegisterModelVersionRequest(version=message), **await self._calls()
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, context=f"registering {version}") from exc

    async def set_endpoint(self, version: str, endpoint: str) -> None:
        """Points tiling at the inference endpoint that serves `version`."""
        try:
            await self._jobs.SetModelEndpoint(
                jobs_pb2.SetModelEndpointRequest(model_version=version, endpoint=endpoint),
                **await self._calls(),
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, context=f"setting the endpoint of {version}") from exc

    async def set_route(self, alias: str, route: Route) -> None:
        """Replaces the alias's targets and weights."""
        request = jobs_pb2.SetModelRouteRequest(
            alias=alias,
            targets=[jobs_pb2.RouteTarget(model_version=v, weight=w) for v, w in route],
        )
        try:
            await self._jobs.SetModelRoute(request, **await self._calls())
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, context=f"routing alias {alias}") from exc

    async def stats(self, version: str, since: datetime) -> VersionStats:
        """A version's finished jobs and ratings since `since` (zeros when it has none)."""
        stamp = Timestamp()
        stamp.FromDatetime(since)
        try:
            reply = await self._feedback.GetModelVersionStats(
                feedback_pb2.GetModelVersionStatsRequest(model_version=version, since=stamp),
                **await self._calls(),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return VersionStats()
            raise from_rpc_error(exc, context=f"reading the stats of {version}") from exc
        return VersionStats(
            succeeded=int(reply.jobs_succeeded),
            failed=int(reply.jobs_failed),
            latency_p95_ms=reply.latency_p95_ms,
            ratings=int(reply.ratings_count),
            rating_mean=reply.rating_mean,
        )

    async def ready(self, endpoint: str, version: str) -> bool:
        """Whether the inference at `endpoint` serves `version`, warmed up."""
        try:
            reply = await self._inference_stub(endpoint).ListLoadedModels(
                inference_pb2.ListLoadedModelsRequest(), **await self._calls()
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return False
            raise from_rpc_error(exc, context=f"asking {endpoint} for its models") from exc
        models: list[inference_pb2.LoadedModel] = list(reply.models)
        return any(m.model_version == version and m.ready for m in models)

    async def evaluate(self, endpoint: str, version: str) -> Quality | None:
        """The version's golden-set quality, its measured failure, or None when unreachable."""
        try:
            reply = await self._inference_stub(endpoint).EvaluateModelVersion(
                inference_pb2.EvaluateModelVersionRequest(model_version=version),
                **await self._calls(timeout_s=self._settings.evaluate_timeout_s),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _MEASURED_FAILURE:
                # FAILED_PRECONDITION: the golden set cannot measure this kind of model;
                # the others: the version broke while it was measured.
                return Quality(
                    error=f"{exc.code().name}: {exc.details()}",
                    measurable=exc.code() != grpc.StatusCode.FAILED_PRECONDITION,
                )
            return None
        return Quality(style_distance=reply.style_distance, content_distance=reply.content_distance)


def is_conflict(exc: GouacheError) -> bool:
    """Whether a registration failed because the name means another definition."""
    return bool(exc.code == grpc.StatusCode.ALREADY_EXISTS)
