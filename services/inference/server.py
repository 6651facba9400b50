"""Wires the inference service: model host, servicer, method policy and start/stop hooks."""

from __future__ import annotations

import logging
import random

import grpc

from gouache.contracts.inference.v1 import inference_pb2_grpc
from gouache.nst.base import StyleFamily
from gouache.runtime.auth import AUTHENTICATED, MethodPolicy, TokenSettings, TokenVerifier
from gouache.runtime.clients import jwks_fetcher, open_channel
from gouache.runtime.server import Hook, ServiceSpec
from services.inference.domain import (
    FamilyBuilder,
    Fault,
    ModelHost,
    resolve_batch_size,
    resolve_device,
)
from services.inference.gpu import register_gpu_metrics
from services.inference.servicer import InferenceServicer
from services.inference.settings import InferenceSettings

logger = logging.getLogger(__name__)

SERVICE_NAME = "gouache.inference.v1.InferenceService"

POLICY: MethodPolicy = {
    f"/{SERVICE_NAME}/Stylize": "internal",
    f"/{SERVICE_NAME}/StylizeBatch": "internal",
    f"/{SERVICE_NAME}/ListLoadedModels": AUTHENTICATED,
    # The canary operator measures a version before shifting traffic to it.
    f"/{SERVICE_NAME}/EvaluateModelVersion": "write:models",
}


def registry_builder(runtime: str, threads: int, precision: str = "auto") -> FamilyBuilder:
    """Builds model versions from the nst registry (imports torch) with `runtime`.

    With "onnx", families that export a network run it in ONNX Runtime with `threads`
    intra-op threads (0: one per core) at `precision` (fp16 where parity holds, see
    `gouache.nst.onnx_runtime.build_onnx_family`); the others (gatys) run in torch.
    """

    def build_family(model_version: str, device: str) -> StyleFamily:
        from gouache.nst import onnx_runtime
        from gouache.nst import precision as precisions

        if not (runtime == "onnx" and onnx_runtime.has_onnx_runtime(model_version)):
            logger.info(
                "building model version", extra={"model_version": model_version, "runtime": "torch"}
            )
            return onnx_runtime.build_family(model_version, device=device, runtime="torch")
        family, choice = onnx_runtime.build_onnx_family(
            model_version,
            device=device,
            threads=threads or None,
            precision=precisions.check_precision(precision),
        )
        logger.info(
            "building model version",
            extra={
                "model_version": model_version,
                "runtime": "onnx",
                "precision": choice.precision,
                "precision_reason": choice.reason,
                "fp16_parity": choice.parity.describe() if choice.parity else None,
            },
        )
        return family

    return build_family


def registry_tile_size(model_version: str) -> int:
    """A model version's default tile edge from the model catalogue, 0 when it names none.

    The registry's specs are built from the catalogue, so this is the same number without
    importing torch.
    """
    from gouache import catalogue

    try:
        return catalogue.get(model_version).tile_size
    except KeyError:
        return 0


def torch_thread_hooks(threads: int) -> tuple[Hook, Hook]:
    """Start and stop hooks that set torch's CPU thread count, then restore it."""
    import torch

    previous: list[int] = []

    async def apply() -> None:
        if threads > 0:
            previous.append(torch.get_num_threads())
            torch.set_num_threads(threads)

    async def restore() -> None:
        if previous:
            torch.set_num_threads(previous.pop())

    return apply, restore


def cuda_available() -> bool:
    """Whether torch sees a CUDA device."""
    import torch

    return bool(torch.cuda.is_available())


async def build(
    settings: InferenceSettings,
    *,
    verifier: TokenVerifier | None = None,
    builder: FamilyBuilder | None = None,
    rng: random.Random | None = None,
) -> tuple[ServiceSpec, TokenVerifier]:
    """The service spec: models load and warm up in on_start, so SERVING means warm.

    `builder` replaces the registry (tests); `rng` draws the injected faults (a seeded
    one makes them repeatable).
    """
    device = resolve_device(
        settings.device, cuda_available=settings.device == "cuda" and cuda_available()
    )
    host = ModelHost(
        settings.served_models(),
        device=device,
        builder=builder
        or registry_builder(settings.runtime, settings.torch_threads, settings.precision),
        max_concurrency=settings.max_concurrency,
        max_pixels=settings.max_pixels,
        warmup_side=settings.warmup_side,
        max_batch_size=resolve_batch_size(settings.max_batch_size, device),
        max_queue_delay_ms=settings.max_queue_delay_ms,
        tile_size_of=registry_tile_size if builder is None else None,
        faults={
            name: Fault(error_rate=fault.error_rate, delay_ms=fault.delay_ms)
            for name, fault in settings.faults.items()
        },
        rng=rng,
    )
    register_gpu_metrics(cuda_available=device == "cuda")
    apply_threads, restore_threads = torch_thread_hooks(settings.torch_threads)
    on_stop: list[Hook] = [restore_threads]
    if verifier is None:
        auth_channel = open_channel(settings.auth_addr, credentials=settings.channel_credentials())
        verifier = TokenVerifier(
            jwks_fetcher(auth_channel),
            TokenSettings(issuer=settings.jwt_issuer, audience=settings.jwt_audience),
        )
        on_stop.append(lambda: auth_channel.close())

    def register(server: grpc.aio.Server) -> None:
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(InferenceServicer(host), server)

    spec = ServiceSpec(
        name="inference",
        service_names=[SERVICE_NAME],
        register=register,
        policy=POLICY,
        on_start=[apply_threads, host.load_all],
        on_stop=on_stop,
    )
    return spec, verifier
