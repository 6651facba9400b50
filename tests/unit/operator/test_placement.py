"""Memory-aware admission: whole GPUs per replica by memory, capacity from Ready nodes."""

from __future__ import annotations

import pytest

from gouache_operator.domain.placement import (
    GpuClaim,
    NodeView,
    PlacementRequest,
    admit,
    gpus_per_replica,
    pool_capacity,
)
from gouache_operator.domain.spec import PoolSpec

POOL = PoolSpec(
    name="a100",
    node_selector={"gouache.dev/pool": "a100"},
    gpu_type="nvidia-a100-40gb",
    gpus_per_node=4,
    gpu_memory_gib=40,
)


def node(name: str, *, ready: bool = True, gpus: int = 4, pool: str = "a100") -> NodeView:
    return NodeView(name=name, labels={"gouache.dev/pool": pool}, ready=ready, gpus=gpus)


@pytest.mark.parametrize(("memory", "gpus"), [(0.5, 1), (40, 1), (40.5, 2), (60, 2), (160, 4)])
def test_gpus_per_replica_follows_memory(memory: float, gpus: int) -> None:
    assert gpus_per_replica(POOL, memory) == gpus


def test_capacity_counts_ready_members_only() -> None:
    capacity = pool_capacity(
        POOL,
        [node("a"), node("b", ready=False), node("c", pool="h100"), node("d", gpus=8)],
        [GpuClaim("mv x", 2)],
    )
    assert (capacity.nodes, capacity.ready_nodes) == (3, 2)
    assert capacity.capacity_gpus == 8  # d reports 8 but the pool promises 4 per node
    assert capacity.free_gpus == 6


def test_fits_and_says_what_is_left() -> None:
    capacity = pool_capacity(POOL, [node("a"), node("b")], [GpuClaim("mv x", 2)])
    verdict = admit(capacity, PlacementRequest(owner="y", replicas=2, gpu_memory_gib=60))
    assert verdict.fits
    assert verdict.gpus_per_replica == 2
    assert "80 GiB left" in verdict.message


def test_refusal_names_needed_and_free_memory() -> None:
    capacity = pool_capacity(POOL, [node("a")], [GpuClaim("ModelVersion ns/old (v1)", 3)])
    verdict = admit(capacity, PlacementRequest(owner="y", replicas=2, gpu_memory_gib=20))
    assert not verdict.fits
    assert verdict.reason == "InsufficientGPUMemory"
    assert "needs 80 GiB" in verdict.message
    assert "40 GiB free (1 of 4 GPUs" in verdict.message
    assert "ModelVersion ns/old (v1) 3" in verdict.message


def test_a_replica_larger_than_a_node() -> None:
    verdict = admit(
        pool_capacity(POOL, [node("a")], []),
        PlacementRequest(owner="y", replicas=1, gpu_memory_gib=200),
    )
    assert (verdict.fits, verdict.reason) == (False, "ReplicaTooLarge")
    assert "5 GPUs of 40 GiB" in verdict.message


def test_no_ready_node() -> None:
    verdict = admit(
        pool_capacity(POOL, [node("a", ready=False)], []),
        PlacementRequest(owner="y", replicas=1, gpu_memory_gib=10),
    )
    assert (verdict.fits, verdict.reason) == (False, "NoReadyNodes")
