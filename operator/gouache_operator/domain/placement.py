"""Memory-aware admission of model versions onto GPU pools: what a pool holds and what fits."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gouache_operator.domain.spec import PoolSpec


@dataclass(frozen=True)
class NodeView:
    """A node as admission sees it: its labels, readiness and allocatable GPUs."""

    name: str
    labels: Mapping[str, str]
    ready: bool
    gpus: int
    unschedulable: bool = False


@dataclass(frozen=True)
class GpuClaim:
    """GPUs held on the pool by someone: a model version's Deployment or another pod."""

    owner: str
    gpus: int
    gpu_memory_gib: float = 0.0


@dataclass(frozen=True)
class PoolCapacity:
    """A pool's GPUs right now: on Ready nodes, claimed, and what is left."""

    pool: PoolSpec
    nodes: int
    ready_nodes: int
    capacity_gpus: int
    claims: tuple[GpuClaim, ...]

    @property
    def allocated_gpus(self) -> int:
        """GPUs held by every claim together."""
        return sum(claim.gpus for claim in self.claims)

    @property
    def free_gpus(self) -> int:
        """GPUs nobody holds (never negative, even when nodes went away under claims)."""
        return max(0, self.capacity_gpus - self.allocated_gpus)

    def gib(self, gpus: int) -> float:
        """GPU memory of `gpus` GPUs of this pool."""
        return gpus * self.pool.gpu_memory_gib


@dataclass(frozen=True)
class PlacementRequest:
    """What a model version asks of its pool: replicas of this much GPU memory each."""

    owner: str
    replicas: int
    gpu_memory_gib: float


@dataclass(frozen=True)
class Admission:
    """The verdict: whether the version fits, and the reason and message for its condition."""

    fits: bool
    reason: str
    message: str
    gpus_per_replica: int = 0


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether node labels satisfy a nodeSelector (every key equal)."""
    return all(labels.get(key) == value for key, value in selector.items())


def pool_capacity(
    pool: PoolSpec, nodes: Iterable[NodeView], claims: Iterable[GpuClaim]
) -> PoolCapacity:
    """The pool's capacity from its Ready, schedulable nodes and the claims on it.

    A node's GPUs count from its allocatable resources, capped at the pool's declared GPUs
    per node, so a node that reports more than the pool promises does not inflate it.
    """
    members = [node for node in nodes if matches(pool.node_selector, node.labels)]
    usable = [node for node in members if node.ready and not node.unschedulable]
    return PoolCapacity(
        pool=pool,
        nodes=len(members),
        ready_nodes=len(usable),
        capacity_gpus=sum(min(node.gpus, pool.gpus_per_node) for node in usable),
        claims=tuple(claims),
    )


def gpus_per_replica(pool: PoolSpec, gpu_memory_gib: float) -> int:
    """Whole GPUs of this pool one replica needs to hold `gpu_memory_gib` of GPU memory."""
    return max(1, math.ceil(gpu_memory_gib / pool.gpu_memory_gib - 1e-9))


def _gib(value: float) -> str:
    return f"{value:g} GiB"


def admit(capacity: PoolCapacity, request: PlacementRequest) -> Admission:
    """Whether `request` fits on the pool beside every other claim, and why not.

    Each replica gets whole GPUs: as many as its GPU memory needs on this pool's GPUs
    (60 GiB on 40 GiB GPUs takes two), all on one node. The messages name the memory
    needed and free so a platform team knows what to add or shrink.
    """
    pool = capacity.pool
    per_replica = gpus_per_replica(pool, request.gpu_memory_gib)
    needed = per_replica * request.replicas
    if per_replica > pool.gpus_per_node:
        return Admission(
            fits=False,
            reason="ReplicaTooLarge",
            message=(
                f"one replica needs {_gib(request.gpu_memory_gib)} of GPU memory: {per_replica} "
                f"GPUs of {_gib(pool.gpu_memory_gib)} on one node, but nodes of pool {pool.name} "
                f"have {pool.gpus_per_node} GPUs ({_gib(capacity.gib(pool.gpus_per_node))}); "
                "use a pool with larger GPUs or a smaller model"
            ),
        )
    if capacity.ready_nodes == 0:
        return Admission(
            fits=False,
            reason="NoReadyNodes",
            message=(
                f"pool {pool.name} has no Ready node ({capacity.nodes} nodes match its "
                f"selector); needs {needed} GPUs ({_gib(capacity.gib(needed))})"
            ),
        )
    if needed > capacity.free_gpus:
        held = ", ".join(
            f"{claim.owner} {claim.gpus}" for claim in capacity.claims if claim.gpus > 0
        )
        return Admission(
            fits=False,
            reason="InsufficientGPUMemory",
            message=(
                f"needs {_gib(capacity.gib(needed))} of GPU memory ({request.replicas} x "
                f"{per_replica} GPU of {_gib(pool.gpu_memory_gib)} for "
                f"{_gib(request.gpu_memory_gib)} per replica), pool {pool.name} has "
                f"{_gib(capacity.gib(capacity.free_gpus))} free ({capacity.free_gpus} of "
                f"{capacity.capacity_gpus} GPUs on {capacity.ready_nodes} Ready nodes"
                + (f"; held: {held})" if held else ")")
            ),
        )
    return Admission(
        fits=True,
        reason="Placed",
        message=(
            f"{request.replicas} x {per_replica} GPU ({_gib(capacity.gib(needed))}) on pool "
            f"{pool.name}; {_gib(capacity.gib(capacity.free_gpus - needed))} left"
        ),
        gpus_per_replica=per_replica,
    )
