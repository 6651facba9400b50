"""Inference metrics in real registries: calls and errors per model version, GPU gauges."""

from __future__ import annotations

import json

import grpc
import pytest
import torch
from prometheus_client import REGISTRY, CollectorRegistry

from services.inference.gpu import GpuCollector, register_gpu_metrics
from services.inference.metrics import UNKNOWN_VERSION
from services.inference.settings import InferenceSettings
from tests.unit.inference.fakes import (
    IdentityFamily,
    batch_request,
    service,
    serving,
    stylize_request,
)


def _count(name: str, version: str, code: str) -> float:
    return REGISTRY.get_sample_value(name, {"model_version": version, "code": code}) or 0.0


def _timed(version: str) -> float:
    labels = {"model_version": version}
    return REGISTRY.get_sample_value("gouache_inference_duration_seconds_count", labels) or 0.0


async def test_calls_are_counted_per_model_version_with_their_status() -> None:
    settings = InferenceSettings.model_validate(
        {
            "port": 0,
            "models": "good=fake.v1,bad=fake.v1",
            "faults": json.dumps({"bad": {"error_rate": 1.0}}),
        }
    )
    requests = "gouache_inference_requests_total"
    errors = "gouache_inference_errors_total"
    before = {
        "good_ok": _count(requests, "good", "OK"),
        "bad_internal": _count(requests, "bad", "INTERNAL"),
        "bad_errors": _count(errors, "bad", "INTERNAL"),
        "unknown": _count(errors, UNKNOWN_VERSION, "FAILED_PRECONDITION"),
        "good_timed": _timed("good"),
    }
    async with serving(settings, {"fake.v1": IdentityFamily()}) as stub:
        await stub.Stylize(stylize_request("good"), metadata=service(), timeout=10)
        await stub.StylizeBatch(batch_request("good"), metadata=service(), timeout=10)
        for call in (
            stub.Stylize(stylize_request("bad"), metadata=service(), timeout=10),
            stub.StylizeBatch(batch_request("bad"), metadata=service(), timeout=10),
            stub.Stylize(stylize_request("no-such.v9"), metadata=service(), timeout=10),
        ):
            with pytest.raises(grpc.aio.AioRpcError):
                await call
    assert _count(requests, "good", "OK") - before["good_ok"] == 2
    assert _count(errors, "good", "OK") == 0
    assert _count(requests, "bad", "INTERNAL") - before["bad_internal"] == 2
    assert _count(errors, "bad", "INTERNAL") - before["bad_errors"] == 2
    # A version nobody serves is counted under one bounded label, not its own.
    assert _count(errors, UNKNOWN_VERSION, "FAILED_PRECONDITION") - before["unknown"] == 1
    assert (
        REGISTRY.get_sample_value(requests, {"model_version": "no-such.v9", "code": "OK"}) is None
    )
    assert _timed("good") - before["good_timed"] == 2


class _Probe:
    """Two devices: device 0 readable, with or without NVML; device 1 failing."""

    def __init__(self, *, nvml: bool) -> None:
        self.nvml = nvml

    def device_count(self) -> int:
        return 2

    def mem_get_info(self, device: int) -> tuple[int, int]:
        if device == 1:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return 30 * 2**30, 80 * 2**30

    def memory_allocated(self, device: int) -> int:
        return 2 * 2**30

    def memory_reserved(self, device: int) -> int:
        return 3 * 2**30

    def utilization(self, device: int) -> int | None:
        return 42 if self.nvml else None


def _gpu(registry: CollectorRegistry, name: str, device: str = "0") -> float | None:
    return registry.get_sample_value(name, {"device": device})


def test_gpu_gauges_report_each_readable_device() -> None:
    registry = CollectorRegistry()
    collector = register_gpu_metrics(
        cuda_available=True, probe=_Probe(nvml=True), registry=registry
    )
    assert isinstance(collector, GpuCollector)
    assert _gpu(registry, "gouache_gpu_memory_total_bytes") == 80 * 2**30
    assert _gpu(registry, "gouache_gpu_memory_used_bytes") == 50 * 2**30
    assert _gpu(registry, "gouache_gpu_memory_allocated_bytes") == 2 * 2**30
    assert _gpu(registry, "gouache_gpu_memory_reserved_bytes") == 3 * 2**30
    assert _gpu(registry, "gouache_gpu_utilization_ratio") == 0.42
    assert _gpu(registry, "gouache_gpu_memory_total_bytes", "1") is None  # unreadable
    # One registration per registry: a second service in the process adds none.
    again = register_gpu_metrics(cuda_available=True, probe=_Probe(nvml=True), registry=registry)
    assert again is None


def test_without_nvml_utilisation_is_left_unset() -> None:
    registry = CollectorRegistry()
    register_gpu_metrics(cuda_available=True, probe=_Probe(nvml=False), registry=registry)
    assert _gpu(registry, "gouache_gpu_memory_used_bytes") == 50 * 2**30
    assert _gpu(registry, "gouache_gpu_utilization_ratio") is None


def test_gpu_gauges_exist_only_where_torch_sees_cuda() -> None:
    registry = CollectorRegistry()
    available = torch.cuda.is_available()
    collector = register_gpu_metrics(cuda_available=available, registry=registry)
    if not available:
        assert collector is None
        assert _gpu(registry, "gouache_gpu_memory_total_bytes") is None
        return
    total = _gpu(registry, "gouache_gpu_memory_total_bytes")
    assert total is not None
    assert total > 0
    used = _gpu(registry, "gouache_gpu_memory_used_bytes")
    assert used is not None
    assert 0 < used <= total
