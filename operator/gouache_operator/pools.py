"""GPUPool status: the pool's nodes, GPUs, what holds them and what is free."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from gouache_operator.cluster import ClusterView
from gouache_operator.domain.spec import InvalidSpec
from gouache_operator.domain.status import Clock, utc_now
from gouache_operator.kube import Json, KubeClient, KubeError, custom_path

logger = logging.getLogger(__name__)


class PoolReporter:
    """Writes a GPUPool's status: its nodes, GPUs, what holds them and what is free."""

    def __init__(self, kube: KubeClient, *, clock: Clock = utc_now) -> None:
        self._kube = kube
        self._cluster = ClusterView(kube)
        self._clock = clock

    async def run(self, interval_s: float) -> None:
        """Reports every pool each interval until cancelled; one pool's error spares the rest."""
        while True:
            try:
                for body in await self._kube.list(custom_path("gpupools")):
                    try:
                        await self.refresh(body)
                    except (KubeError, httpx.HTTPError) as exc:
                        logger.warning(
                            "could not report a pool",
                            extra={"pool": body["metadata"]["name"], "error": str(exc)},
                        )
            except (KubeError, httpx.HTTPError) as exc:
                logger.warning("could not list pools", extra={"error": str(exc)})
            await asyncio.sleep(interval_s)

    async def refresh(self, body: Json) -> None:
        """Recomputes the pool's status from the cluster and writes it when it changed."""
        meta = body["metadata"]
        found = await self._cluster.pool(meta["name"])
        old = body.get("status") or {}
        now = self._clock()
        if found is None:
            return
        if isinstance(found, InvalidSpec):
            status: Json = {
                "conditions": [_condition(old, "Ready", False, found.reason, found.message, now)],
                "observedGeneration": meta.get("generation", 1),
            }
        else:
            capacity = await self._cluster.capacity(found)
            ready = capacity.ready_nodes > 0
            message = (
                f"{capacity.ready_nodes}/{capacity.nodes} nodes Ready, {capacity.free_gpus} of "
                f"{capacity.capacity_gpus} GPUs free"
            )
            status = {
                "nodes": capacity.nodes,
                "readyNodes": capacity.ready_nodes,
                "capacity": _gpus(capacity.capacity_gpus, capacity.gib(capacity.capacity_gpus)),
                "allocated": _gpus(capacity.allocated_gpus, capacity.gib(capacity.allocated_gpus)),
                "free": _gpus(capacity.free_gpus, capacity.gib(capacity.free_gpus)),
                "placements": [
                    {"owner": c.owner, "gpus": c.gpus, "gpuMemoryGiB": c.gpu_memory_gib}
                    for c in capacity.claims
                ],
                "conditions": [
                    _condition(
                        old,
                        "Ready",
                        ready,
                        "NodesReady" if ready else "NoReadyNodes",
                        message,
                        now,
                    )
                ],
                "observedGeneration": meta.get("generation", 1),
            }
        if status != {k: old.get(k) for k in status}:
            await self._kube.patch(
                custom_path("gpupools", name=meta["name"], sub="status"), {"status": status}
            )


def _gpus(count: int, gib: float) -> Json:
    return {"gpus": count, "gpuMemoryGiB": gib}


def _condition(
    old: Mapping[str, Any], kind: str, ok: bool, reason: str, message: str, now: datetime
) -> Json:
    value = str(ok)
    previous = next((c for c in old.get("conditions", []) if c.get("type") == kind), None)
    since = (
        previous.get("lastTransitionTime")
        if previous is not None and previous.get("status") == value
        else now.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    return {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }
