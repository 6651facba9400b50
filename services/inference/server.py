"""Wires the inference service: model host, servicer, method policy and start/stop hooks."""

from __future__ import annotations

import grpc

from gouache.contracts.inference.v1 import inference_pb2_grpc
from gouache.nst.base import StyleFamily
from gouache.runtime.auth import AUTHENTICATED, MethodPolicy, TokenSettings, TokenVerifier
from gouache.runtime.clients import jwks_fetcher, open_channel
from gouache.runtime.server import Hook, ServiceSpec
from services.inference.domain import FamilyBuilder, ModelHost, resolve_device
from services.inference.servicer import InferenceServicer
from services.inference.settings import InferenceSettings

SERVICE_NAME = "gouache.inference.v1.InferenceService"

POLICY: MethodPolicy = {
    f"/{SERVICE_NAME}/Stylize": "internal",
    f"/{SERVICE_NAME}/StylizeBatch": "internal",
    f"/{SERVICE_NAME}/ListLoadedModels": AUTHENTICATED,
}


def build_from_registry(model_version: str, device: str) -> StyleFamily:
    """Builds a model version's family from the nst registry (imports torch)."""
    from gouache.nst import registry

    return registry.build_family(model_version, device=device)


def registry_tile_size(model_version: str) -> int:
    """A model version's default tile edge from the nst registry, 0 when it names none."""
    from gouache.nst import registry

    try:
        return int(registry.get(model_version).tile_size)
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
) -> tuple[ServiceSpec, TokenVerifier]:
    """The service spec: models load and warm up in on_start, so SERVING means warm."""
    device = resolve_device(
        settings.device, cuda_available=settings.device == "cuda" and cuda_available()
    )
    host = ModelHost(
        settings.model_versions(),
        device=device,
        builder=builder or build_from_registry,
        max_concurrency=settings.max_concurrency,
        max_pixels=settings.max_pixels,
        warmup_side=settings.warmup_side,
        tile_size_of=registry_tile_size if builder is None else None,
    )
    apply_threads, restore_threads = torch_thread_hooks(settings.torch_threads)
    on_stop: list[Hook] = [restore_threads]
    if verifier is None:
        auth_channel = open_channel(settings.auth_addr)
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
