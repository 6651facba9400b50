"""Kopf handlers: small, typed, and only wiring; the rules live in the domain package."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx
import kopf

from gouache.runtime.errors import GouacheError
from gouache_operator.kube import KubeClient, KubeError, discover
from gouache_operator.mesh import MeshClient
from gouache_operator.pools import PoolReporter
from gouache_operator.reconciler import RolloutReconciler
from gouache_operator.resources import GROUP, VERSION
from gouache_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)

FINALIZER = "gouache.dev/release-traffic"

# Failures that say a dependency is away, not that the resource is wrong.
UNREACHABLE = (GouacheError, KubeError, httpx.HTTPError)


def build_registry(config: OperatorSettings) -> kopf.OperatorRegistry:
    """Every handler of the operator, registered in a fresh registry (no module globals)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In a pod: its service account; elsewhere: the kubeconfig ($KUBECONFIG)."""
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        """One Kubernetes client and one set of mesh channels for the operator's lifetime."""
        # Kopf's bookkeeping goes to annotations: the status schema has no room for it.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
        settings.persistence.finalizer = FINALIZER
        settings.posting.enabled = False
        settings.watching.server_timeout = config.watch_timeout_s
        settings.watching.client_timeout = config.watch_timeout_s + 15
        kube = KubeClient(discover())
        mesh = MeshClient(config)
        memo["kube"] = kube
        memo["mesh"] = mesh
        memo["rollouts"] = RolloutReconciler(kube, mesh, config)
        # Pools are reported by a plain task, not a Kopf timer: a timer puts a finalizer
        # on every GPUPool, and a pool could then not be deleted while the operator is down.
        memo["pools"] = asyncio.create_task(PoolReporter(kube).run(config.pool_tick_s))
        logger.info(
            "operator started",
            extra={
                "namespaces": config.namespace_list() or "all",
                "jobs": config.jobs_addr,
                "feedback": config.feedback_addr,
            },
        )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        """Stops the pool reports and closes the clients opened at startup."""
        if "pools" in memo:
            memo["pools"].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await memo["pools"]
        if "mesh" in memo:
            await memo["mesh"].close()
        if "kube" in memo:
            await memo["kube"].close()

    retry_s = max(1.0, config.tick_s)

    @kopf.timer(
        GROUP, VERSION, "modelversions", interval=config.tick_s, backoff=retry_s, registry=registry
    )
    async def reconcile_version(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        """Each tick: observe the version and its world, decide, apply."""
        try:
            await memo["rollouts"].reconcile(dict(body))
        except UNREACHABLE as exc:
            # Nothing was half-done that the next tick does not redo: retry soon, quietly.
            raise kopf.TemporaryError(
                f"mesh or API server unreachable: {exc}", delay=retry_s
            ) from exc

    # Deleting waits until the alias's traffic is moved off the version; if the mesh stays
    # unreachable for ~30 s the finalizer is released anyway, so an uninstall cannot hang.
    @kopf.on.delete(GROUP, VERSION, "modelversions", retries=10, backoff=3.0, registry=registry)
    async def release_version(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        """Before the version goes: its alias's traffic returns to the versions that stay."""
        try:
            await memo["rollouts"].release(dict(body))
        except UNREACHABLE as exc:
            raise kopf.TemporaryError(
                f"could not move the version's traffic: {exc}", delay=3.0
            ) from exc

    return registry
