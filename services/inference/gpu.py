"""GPU memory and utilisation as Prometheus gauges, read at each scrape when CUDA is present."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


class GpuProbe(Protocol):
    """What the collector reads about the CUDA devices this process sees."""

    def device_count(self) -> int: ...

    def mem_get_info(self, device: int) -> tuple[int, int]:
        """(free, total) bytes on the device, all processes included."""
        ...

    def memory_allocated(self, device: int) -> int:
        """Bytes held by this process's tensors."""
        ...

    def memory_reserved(self, device: int) -> int:
        """Bytes this process's caching allocator holds (tensors and cache)."""
        ...

    def utilization(self, device: int) -> int | None:
        """Percent of the last sample period a kernel ran, or None when NVML is absent."""
        ...


class TorchGpuProbe:
    """Reads torch.cuda; utilisation only when pynvml (nvidia-ml-py) is importable."""

    def __init__(self) -> None:
        import torch

        self._cuda = torch.cuda
        self._nvml = importlib.util.find_spec("pynvml") is not None

    def device_count(self) -> int:
        return int(self._cuda.device_count())

    def mem_get_info(self, device: int) -> tuple[int, int]:
        free, total = self._cuda.mem_get_info(device)
        return int(free), int(total)

    def memory_allocated(self, device: int) -> int:
        return int(self._cuda.memory_allocated(device))

    def memory_reserved(self, device: int) -> int:
        return int(self._cuda.memory_reserved(device))

    def utilization(self, device: int) -> int | None:
        return int(self._cuda.utilization(device)) if self._nvml else None


class GpuCollector(Collector):
    """Gauges per device index; a device that cannot be read is left out of that scrape."""

    def __init__(self, probe: GpuProbe) -> None:
        self._probe = probe

    def describe(self) -> list[Metric]:
        # Declared names let the registry refuse a second GPU collector.
        return list(gpu_families())

    def collect(self) -> Iterator[Metric]:
        families = gpu_families()
        for device in range(self._probe.device_count()):
            label = [str(device)]
            try:
                free, total = self._probe.mem_get_info(device)
                allocated = self._probe.memory_allocated(device)
                reserved = self._probe.memory_reserved(device)
                utilization = self._probe.utilization(device)
            except Exception as exc:
                logger.warning("GPU %d cannot be read: %s", device, exc)
                continue
            families[0].add_metric(label, total)
            families[1].add_metric(label, total - free)
            families[2].add_metric(label, allocated)
            families[3].add_metric(label, reserved)
            if utilization is not None:
                families[4].add_metric(label, utilization / 100)
        yield from families


def gpu_families() -> tuple[GaugeMetricFamily, ...]:
    """The GPU gauges, empty: the collector fills them at each scrape."""
    return (
        GaugeMetricFamily(
            "gouache_gpu_memory_total_bytes", "Memory of the GPU.", labels=["device"]
        ),
        GaugeMetricFamily(
            "gouache_gpu_memory_used_bytes",
            "Memory in use on the GPU by every process (total minus free).",
            labels=["device"],
        ),
        GaugeMetricFamily(
            "gouache_gpu_memory_allocated_bytes",
            "GPU memory held by this process's torch tensors.",
            labels=["device"],
        ),
        GaugeMetricFamily(
            "gouache_gpu_memory_reserved_bytes",
            "GPU memory held by this process's torch caching allocator.",
            labels=["device"],
        ),
        GaugeMetricFamily(
            "gouache_gpu_utilization_ratio",
            "Share of the last sample period in which a kernel ran on the GPU (NVML); "
            "absent without pynvml.",
            labels=["device"],
        ),
    )


def register_gpu_metrics(
    *, cuda_available: bool, probe: GpuProbe | None = None, registry: CollectorRegistry = REGISTRY
) -> GpuCollector | None:
    """Registers the GPU gauges when CUDA is available; None when it is not or already done.

    Without CUDA there is nothing to report, and no series at all is clearer than zeros.
    """
    if not cuda_available:
        return None
    collector = GpuCollector(probe or TorchGpuProbe())
    try:
        registry.register(collector)
    except ValueError:  # a second service built in the same process (tests)
        logger.debug("GPU metrics are already registered")
        return None
    return collector
