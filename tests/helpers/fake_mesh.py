"""A scripted mesh for operator tests: auth, jobs routing, feedback stats and inference.

One real gRPC server on 127.0.0.1 (in its own thread and event loop, so tests stay
synchronous while the operator process talks to it) answers the RPCs the operator makes.
Tests set what the mesh reports (stats, readiness, quality) and read what the operator
did (registrations, endpoints, every route it set, in order). The end-to-end tests run
the operator against the real mesh instead.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from gouache.contracts.auth.v1 import auth_pb2, auth_pb2_grpc
from gouache.contracts.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from gouache.contracts.inference.v1 import inference_pb2, inference_pb2_grpc
from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from gouache.runtime.ports import free_ports


@dataclass
class Stats:
    """What feedback reports for a version (the window is not modelled)."""

    succeeded: int = 0
    failed: int = 0
    p95_ms: float = 300.0
    ratings: int = 0
    rating_mean: float = 0.0


@dataclass
class MeshState:
    """Everything the fake mesh knows; guarded by `lock`."""

    routes: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    versions: dict[str, jobs_pb2.ModelVersion] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)
    stats: dict[str, Stats] = field(default_factory=dict)
    ready: set[str] = field(default_factory=set)
    quality: dict[str, tuple[float, float] | str] = field(default_factory=dict)
    route_log: list[tuple[float, str, tuple[tuple[str, int], ...]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Auth(auth_pb2_grpc.AuthServiceServicer):
    async def IssueToken(self, request: Any, context: Any) -> auth_pb2.IssueTokenResponse:
        return auth_pb2.IssueTokenResponse(
            access_token="fake-operator-token", token_type="Bearer", expires_in=3600
        )


class _Jobs(jobs_pb2_grpc.JobsServiceServicer):
    def __init__(self, state: MeshState) -> None:
        self.state = state

    async def ListModels(self, request: Any, context: Any) -> jobs_pb2.ListModelsResponse:
        with self.state.lock:
            return jobs_pb2.ListModelsResponse(
                versions=list(self.state.versions.values()),
                routes=[
                    jobs_pb2.ModelRoute(
                        alias=alias,
                        targets=[
                            jobs_pb2.RouteTarget(model_version=v, weight=w) for v, w in targets
                        ],
                    )
                    for alias, targets in self.state.routes.items()
                ],
            )

    async def RegisterModelVersion(
        self, request: Any, context: Any
    ) -> jobs_pb2.RegisterModelVersionResponse:
        with self.state.lock:
            existing = self.state.versions.get(request.version.name)
            if existing is not None and existing.family != request.version.family:
                await context.abort(grpc.StatusCode.ALREADY_EXISTS, "registered differently")
            self.state.versions[request.version.name] = request.version
        return jobs_pb2.RegisterModelVersionResponse(version=request.version)

    async def SetModelEndpoint(
        self, request: Any, context: Any
    ) -> jobs_pb2.SetModelEndpointResponse:
        with self.state.lock:
            if request.model_version not in self.state.versions:
                await context.abort(grpc.StatusCode.NOT_FOUND, "not registered")
            self.state.endpoints[request.model_version] = request.endpoint
        return jobs_pb2.SetModelEndpointResponse(
            model_version=request.model_version, endpoint=request.endpoint
        )

    async def SetModelRoute(self, request: Any, context: Any) -> jobs_pb2.SetModelRouteResponse:
        targets = tuple((t.model_version, t.weight) for t in request.targets)
        with self.state.lock:
            missing = [v for v, _ in targets if v not in self.state.versions]
            if missing:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"not registered: {missing}")
            self.state.routes[request.alias] = list(targets)
            self.state.route_log.append((time.monotonic(), request.alias, targets))
        return jobs_pb2.SetModelRouteResponse(
            route=jobs_pb2.ModelRoute(alias=request.alias, targets=request.targets)
        )


class _Feedback(feedback_pb2_grpc.FeedbackServiceServicer):
    def __init__(self, state: MeshState) -> None:
        self.state = state

    async def GetModelVersionStats(
        self, request: Any, context: Any
    ) -> feedback_pb2.ModelVersionStats:
        with self.state.lock:
            stats = self.state.stats.get(request.model_version)
        if stats is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "never seen")
        assert stats is not None
        finished = stats.succeeded + stats.failed
        return feedback_pb2.ModelVersionStats(
            model_version=request.model_version,
            jobs_succeeded=stats.succeeded,
            jobs_failed=stats.failed,
            error_rate=stats.failed / finished if finished else 0.0,
            latency_p50_ms=stats.p95_ms / 2,
            latency_p95_ms=stats.p95_ms,
            ratings_count=stats.ratings,
            rating_mean=stats.rating_mean,
        )


class _Inference(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, state: MeshState) -> None:
        self.state = state

    async def ListLoadedModels(
        self, request: Any, context: Any
    ) -> inference_pb2.ListLoadedModelsResponse:
        with self.state.lock:
            ready = sorted(self.state.ready)
        return inference_pb2.ListLoadedModelsResponse(
            models=[
                inference_pb2.LoadedModel(model_version=v, family="adain", ready=True)
                for v in ready
            ]
        )

    async def EvaluateModelVersion(
        self, request: Any, context: Any
    ) -> inference_pb2.EvaluateModelVersionResponse:
        with self.state.lock:
            quality = self.state.quality.get(request.model_version, (0.6, 0.5))
        if isinstance(quality, str):
            await context.abort(grpc.StatusCode.INTERNAL, quality)
        assert not isinstance(quality, str)
        return inference_pb2.EvaluateModelVersionResponse(
            model_version=request.model_version,
            style_distance=quality[0],
            content_distance=quality[1],
            pairs=4,
        )


class FakeMesh:
    """The fake mesh's server; `address` is what the operator's settings point at."""

    def __init__(self) -> None:
        self.state = MeshState()
        self.port = free_ports(1)[0]
        self.address = f"127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: grpc.aio.Server | None = None

    def start(self) -> FakeMesh:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        server = grpc.aio.server()
        auth_pb2_grpc.add_AuthServiceServicer_to_server(_Auth(), server)
        jobs_pb2_grpc.add_JobsServiceServicer_to_server(_Jobs(self.state), server)
        feedback_pb2_grpc.add_FeedbackServiceServicer_to_server(_Feedback(self.state), server)
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(_Inference(self.state), server)
        server.add_insecure_port(self.address)
        await server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(0), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def seed(self, alias: str, version: str, family: str = "adain") -> None:
        """A version the jobs service already routes an alias to (as its seed would)."""
        with self.state.lock:
            self.state.versions[version] = jobs_pb2.ModelVersion(
                name=version, family=family, encoder="lite0", tile_size=512
            )
            self.state.routes[alias] = [(version, 100)]
            self.state.ready.add(version)

    def update(self, change: Callable[[MeshState], None]) -> None:
        """Changes the state under its lock."""
        with self.state.lock:
            change(self.state)

    def route(self, alias: str) -> dict[str, int]:
        with self.state.lock:
            return dict(self.state.routes.get(alias, []))

    def route_history(self, alias: str) -> list[tuple[tuple[str, int], ...]]:
        with self.state.lock:
            return [targets for _, a, targets in self.state.route_log if a == alias]
