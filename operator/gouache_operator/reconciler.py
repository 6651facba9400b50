"""The use case of a ModelVersion: reconcile it each tick, release its traffic when deleted."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from gouache import catalogue
from gouache.catalogue import CatalogueEntry
from gouache.runtime.errors import GouacheError
from gouache_operator.cluster import ClusterView
from gouache_operator.domain.analysis import Quality
from gouache_operator.domain.catalogue import catalogue_entry
from gouache_operator.domain.placement import PlacementRequest, admit
from gouache_operator.domain.rollout import (
    ACTION_ANNOTATION,
    Decision,
    Observation,
    Peer,
    Route,
    analysis_due,
    decide,
    needs_quality,
    needs_stable_quality,
    stable_from_route,
    stats_since,
)
from gouache_operator.domain.spec import (
    InvalidSpec,
    PoolSpec,
    VersionSpec,
    Weights,
    parse_version_spec,
)
from gouache_operator.domain.status import (
    Clock,
    Phase,
    Status,
    parse_time,
    status_from_json,
    status_to_json,
    utc_now,
)
from gouache_operator.kube import Json, KubeClient, KubeError, custom_path
from gouache_operator.mesh import MeshClient, is_conflict
from gouache_operator.resources import (
    InferenceTemplate,
    Owner,
    deployment,
    object_name,
    selector_labels,
    service,
)
from gouache_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)

TEMPLATE_HASH = "gouache.dev/template-hash"


def _spec(body: Mapping[str, Any]) -> VersionSpec | InvalidSpec:
    try:
        return parse_version_spec(body.get("spec") or {})
    except InvalidSpec as exc:
        return exc


def _peer(body: Mapping[str, Any]) -> Peer | None:
    spec = _spec(body)
    if isinstance(spec, InvalidSpec):
        return None
    status = status_from_json(body.get("status"))
    meta = body["metadata"]
    return Peer(
        name=meta["name"],
        version=spec.version,
        phase=status.phase,
        created=parse_time(meta.get("creationTimestamp")) or utc_now(),
        promoted_at=status.promoted_at,
        stable_version=status.stable_version,
    )


class RolloutReconciler:
    """Observes a ModelVersion and its world, asks the domain what to do, and does it.

    The status is written first: everything after it (Deployment, registration, route,
    Events) is derived from the status and idempotent, so a crash anywhere repeats work
    without repeating or skipping a step.
    """

    def __init__(
        self,
        kube: KubeClient,
        mesh: MeshClient,
        settings: OperatorSettings,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._kube = kube
        self._mesh = mesh
        self._cluster = ClusterView(kube)
        self._settings = settings
        self._clock = clock
        self._pool_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._registered: dict[str, str] = {}
        self._known: set[str] = set()
        self._checks: dict[tuple[str, str, Weights | None], CatalogueEntry | InvalidSpec] = {}
        self._template = InferenceTemplate(
            image=settings.inference_image,
            port=settings.inference_port,
            env=settings.inference_env,
            service_account=settings.inference_service_account,
            unreachable_toleration_s=settings.unreachable_toleration_s,
        )

    def endpoint(self, version: str, namespace: str) -> str:
        """Where tiling reaches the inference that serves `version`."""
        return self._settings.endpoint_template.format(
            service=object_name(version), namespace=namespace, port=self._settings.inference_port
        )

    async def reconcile(self, body: Json) -> None:
        """One pass over a ModelVersion."""
        spec = _spec(body)
        status = status_from_json(body.get("status"))
        if isinstance(spec, VersionSpec) and status.phase is Phase.PENDING:
            # Admission reads the pool's claims and creates the Deployment under one lock,
            # so two versions admitted at once cannot both take the last GPUs.
            async with self._pool_locks[spec.pool]:
                await self._reconcile(body, spec, status)
        else:
            await self._reconcile(body, spec, status)

    async def _reconcile(self, body: Json, spec: VersionSpec | InvalidSpec, status: Status) -> None:
        meta = body["metadata"]
        now = self._clock()
        observation = Observation(
            now=now,
            name=meta["name"],
            created=parse_time(meta.get("creationTimestamp")) or now,
            generation=int(meta.get("generation", 1)),
            spec=spec,
            status=status,
            action=(meta.get("annotations") or {}).get(ACTION_ANNOTATION, ""),
        )
        pool: PoolSpec | None = None
        if isinstance(spec, VersionSpec):
            found = await self._cluster.pool(spec.pool)
            pool = found if isinstance(found, PoolSpec) else None
            observation = await self._observe(observation, body, spec, found)
        decision = decide(observation)
        await self._apply(body, observation, decision, pool)

    async def _observe(
        self,
        obs: Observation,
        body: Json,
        spec: VersionSpec,
        pool: PoolSpec | InvalidSpec | None,
    ) -> Observation:
        meta = body["metadata"]
        namespace = meta["namespace"]
        status = obs.status
        others = [
            b for b in await self._cluster.versions(namespace) if b["metadata"]["name"] != obs.name
        ]
        peers = tuple(
            peer
            for peer in (_peer(b) for b in others if _alias(b) == spec.alias)
            if peer is not None
        )
        endpoint = self.endpoint(spec.version, namespace)
        routes = await self._mesh.routes()
        route = routes.get(spec.alias)
        obs = replace(obs, peers=peers, endpoint=endpoint, route=route)
        if status.phase is Phase.PENDING:
            return await self._admission(obs, spec, pool, meta)
        owner = Owner(name=obs.name, namespace=namespace, uid=meta.get("uid", ""))
        state = await self._cluster.deployment(
            namespace, object_name(spec.version), selector_labels(owner)
        )
        obs = replace(obs, deployment=state)
        available = state is not None and state.available >= spec.replicas_min
        if status.phase in (Phase.PLACING, Phase.WARMING) and available:
            ready = await self._mesh.ready(endpoint, spec.version)
            obs = replace(obs, endpoint_ready=ready)
            if ready and needs_quality(status):
                quality = await self._mesh.evaluate(endpoint, spec.version)
                stable = stable_from_route(route, spec.version)
                stable_quality = await self._stable_quality(stable, others) if stable else None
                obs = replace(obs, quality=quality, stable_quality=stable_quality)
        if needs_stable_quality(status) and status.stable_version:
            obs = replace(
                obs, stable_quality=await self._stable_quality(status.stable_version, others)
            )
        if analysis_due(status, spec, obs.now):
            since = stats_since(status, spec, obs.now)
            stats = await self._mesh.stats(spec.version, since)
            stable_stats = None
            if status.promoted_at is None and status.stable_version:
                stable_stats = await self._mesh.stats(status.stable_version, since)
            obs = replace(obs, stats=stats, stable_stats=stable_stats)
        return obs

    async def _admission(
        self, obs: Observation, spec: VersionSpec, pool: PoolSpec | InvalidSpec | None, meta: Json
    ) -> Observation:
        """Pending: is the version valid, known to jobs, and does its pool hold it?"""
        if pool is None:
            problem = InvalidSpec(
                "PoolNotFound",
                f"GPUPool {spec.pool!r} does not exist (kubectl get gpupools lists the pools)",
            )
            return replace(obs, problem=problem)
        if isinstance(pool, InvalidSpec):
            return replace(
                obs, problem=InvalidSpec("PoolInvalid", f"GPUPool {spec.pool}: {pool.message}")
            )
        checked = self._checked(spec)
        if isinstance(checked, InvalidSpec):
            return replace(obs, problem=checked)
        try:
            if spec.version not in self._known:
                await self._mesh.register(spec.version, checked, self._description(spec))
                self._known.add(spec.version)
        except GouacheError as exc:
            if not is_conflict(exc):
                raise
            conflict = InvalidSpec(
                "VersionConflict",
                f"the jobs service already knows version {spec.version} with another "
                f"definition ({exc.message}); versions are immutable, choose another name",
            )
            return replace(obs, problem=conflict)
        capacity = await self._cluster.capacity(
            pool, exclude_instance=f"{meta['namespace']}/{obs.name}"
        )
        admission = admit(
            capacity,
            PlacementRequest(
                owner=obs.name, replicas=spec.replicas_min, gpu_memory_gib=spec.gpu_memory_gib
            ),
        )
        return replace(obs, admission=admission)

    def _checked(self, spec: VersionSpec) -> CatalogueEntry | InvalidSpec:
        """The catalogue check of a spec, once per distinct build and artifact (files in an
        installed package do not change while the operator runs)."""
        key = (spec.model, spec.family, spec.weights)
        if key not in self._checks:
            try:
                self._checks[key] = catalogue_entry(spec)
            except InvalidSpec as refused:
                self._checks[key] = refused
        return self._checks[key]

    async def _stable_quality(self, stable: str, others: list[Json]) -> Quality | None:
        """The stable version's quality, measured where it is served."""
        endpoint = ""
        for other in others:
            spec = _spec(other)
            if isinstance(spec, VersionSpec) and spec.version == stable:
                endpoint = status_from_json(other.get("status")).endpoint
        return await self._mesh.evaluate(endpoint, stable)

    @staticmethod
    def _description(spec: VersionSpec) -> str:
        return f"{spec.model} served as {spec.version} (ModelVersion, alias {spec.alias})"

    async def _apply(
        self, body: Json, obs: Observation, decision: Decision, pool: PoolSpec | None
    ) -> None:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        path = custom_path("modelversions", namespace, name)
        # Act, then report: the status never says what the cluster and the mesh do not do
        # yet (a rollback's "back on stable" with the canary still routed). A failure
        # between the two leaves the old status, and the next pass finds the work done.
        spec = obs.spec
        if isinstance(spec, VersionSpec):
            if decision.replicas is not None:
                await self._ensure_objects(body, spec, pool, decision)
            if decision.register:
                await self._ensure_registered(spec, obs.endpoint)
            if decision.route is not None and not _same_route(decision.route, obs.route):
                await self._mesh.set_route(spec.alias, decision.route)
                logger.info(
                    "route set",
                    extra={"alias": spec.alias, "route": dict(decision.route)},
                )
        before, after = status_to_json(obs.status), status_to_json(decision.status)
        if before != after:
            await self._kube.patch(f"{path}/status", {"status": after})
            if obs.status.phase is not decision.status.phase:
                logger.info(
                    "phase changed",
                    extra={
                        "modelversion": f"{namespace}/{name}",
                        "from": obs.status.phase.value,
                        "to": decision.status.phase.value,
                        "weight": decision.status.weight,
                        "detail": decision.status.message,
                    },
                )
        for event in decision.events:
            try:
                await self._kube.post_event(
                    body, reason=event.reason, message=event.message, warning=event.warning
                )
            except KubeError as exc:  # an Event is a courtesy; the status already says it
                logger.warning(
                    "could not post an event", extra={"reason": event.reason, "error": str(exc)}
                )
        if decision.clear_action:
            await self._kube.patch(path, {"metadata": {"annotations": {ACTION_ANNOTATION: None}}})

    async def _ensure_objects(
        self, body: Json, spec: VersionSpec, pool: PoolSpec | None, decision: Decision
    ) -> None:
        """The Deployment at the decided replicas and its Service, patched only when they differ."""
        meta = body["metadata"]
        namespace = meta["namespace"]
        placement = decision.status.placement
        if pool is None or placement is None:
            logger.warning(
                "cannot manage the inference Deployment: pool or placement unknown",
                extra={"modelversion": f"{namespace}/{meta['name']}", "pool": spec.pool},
            )
            return
        owner = Owner(name=meta["name"], namespace=namespace, uid=meta["uid"])
        wanted = deployment(
            owner,
            spec,
            pool,
            self._template,
            replicas=decision.replicas or 0,
            gpus_per_replica=placement.gpus_per_replica,
            progress_deadline_s=spec.rollout.progress_deadline_s,
        )
        digest = _digest(wanted)
        wanted["metadata"]["annotations"][TEMPLATE_HASH] = digest
        name = object_name(spec.version)
        base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
        existing = await self._kube.get(f"{base}/{name}")
        if existing is None:
            await self._kube.create(base, wanted)
        elif existing["metadata"].get("annotations", {}).get(TEMPLATE_HASH) != digest:
            await self._kube.patch(f"{base}/{name}", wanted)
        services = f"/api/v1/namespaces/{namespace}/services"
        if await self._kube.get(f"{services}/{name}") is None:
            await self._kube.create(services, service(owner, spec, self._template))

    async def _ensure_registered(self, spec: VersionSpec, endpoint: str) -> None:
        if self._registered.get(spec.version) == endpoint:
            return
        entry = catalogue.get(spec.model)
        await self._mesh.register(spec.version, entry, self._description(spec))
        await self._mesh.set_endpoint(spec.version, endpoint)
        self._registered[spec.version] = endpoint

    async def release(self, body: Json) -> None:
        """A ModelVersion is being deleted: its alias's traffic goes back to the others.

        Its Deployment and Service are garbage-collected by their owner references; the
        route must not keep sending jobs to a version whose inference is gone.
        """
        spec = _spec(body)
        if isinstance(spec, InvalidSpec):
            return
        self._registered.pop(spec.version, None)
        self._known.discard(spec.version)
        route = (await self._mesh.routes()).get(spec.alias)
        mine = dict(route or ()).get(spec.version, 0)
        if route is None or mine <= 0:
            return
        status = status_from_json(body.get("status"))
        heir = status.stable_version or stable_from_route(route, spec.version)
        others = [(v, w) for v, w in route if v != spec.version]
        if not heir or not others:
            logger.warning(
                "deleted version was the alias's only target; the route is left as it is",
                extra={"alias": spec.alias, "model_version": spec.version},
            )
            return
        released: Route = tuple((v, w + mine if v == heir else w) for v, w in others)
        if heir not in dict(others):
            released = ((heir, mine), *released)
        await self._mesh.set_route(spec.alias, released)
        logger.info(
            "released a deleted version's traffic",
            extra={"alias": spec.alias, "model_version": spec.version, "route": dict(released)},
        )


def _alias(body: Mapping[str, Any]) -> str:
    return str((body.get("spec") or {}).get("alias", ""))


def _same_route(a: Route, b: Route | None) -> bool:
    return b is not None and dict(a) == dict(b)


def _digest(manifest: Mapping[str, Any]) -> str:
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
