"""Tiny stand-in families and an in-process inference server for the service's tests."""

from __future__ import annotations

import random
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import numpy as np

from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.inference.v1 import inference_pb2, inference_pb2_grpc
from gouache.nst.base import Cancellation, RGBImage, StyleFamily, StylizeControls
from gouache.runtime.auth import TokenVerifier
from gouache.runtime.server import start_service
from services.inference.domain import FamilyBuilder
from services.inference.server import build
from services.inference.settings import InferenceSettings
from tests.helpers.tokens import TestSigner

SIGNER = TestSigner()


def metadata(*scopes: str, role: str = "user") -> tuple[tuple[str, str], ...]:
    """Call metadata with a bearer token holding exactly `scopes`."""
    return (("authorization", f"Bearer {SIGNER.token(role=role, scopes=scopes)}"),)


def service() -> tuple[tuple[str, str], ...]:
    """What tiling sends: a service token (scope `internal`), fresh for each call (tokens
    made once at import would expire in a long test session)."""
    return metadata("internal", role="service")


def operator() -> tuple[tuple[str, str], ...]:
    """What the canary operator sends, fresh for each call."""
    return metadata("read:models", "write:models", role="operator")


class IdentityFamily:
    """Returns the content unchanged and counts its calls: a model that paints no style."""

    name = "identity"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0

    def stylize(
        self,
        content: RGBImage,
        styles: Sequence[RGBImage],
        weights: Sequence[float],
        controls: StylizeControls,
        *,
        style_keys: Sequence[str] | None = None,
        cancellation: Cancellation | None = None,
    ) -> RGBImage:
        with self._lock:
            self.calls += 1
        return content.copy()


@dataclass(frozen=True)
class _TrainedStyle:
    sha256: str


class TrainedOnlyFamily(IdentityFamily):
    """An identity that declares one trained style, like feedforward."""

    name = "trained"
    trained_styles = (_TrainedStyle("a" * 64),)


def builder_of(
    families: Mapping[str, StyleFamily], built: list[str] | None = None
) -> FamilyBuilder:
    """A FamilyBuilder that hands out `families[model]` and records the models it built."""

    def build_family(model: str, device: str) -> StyleFamily:
        if built is not None:
            built.append(model)
        return families[model]

    return build_family


@asynccontextmanager
async def serving(
    settings: InferenceSettings,
    families: Mapping[str, StyleFamily] | None = None,
    *,
    rng: random.Random | None = None,
) -> AsyncIterator[inference_pb2_grpc.InferenceServiceStub]:
    """An in-process server on a free port; `families` by model, else the real registry."""
    spec, verifier = await build(
        settings,
        verifier=TokenVerifier(SIGNER.fetch),
        builder=None if families is None else builder_of(families),
        rng=rng,
    )
    running = await start_service(settings, spec, verifier)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield inference_pb2_grpc.InferenceServiceStub(channel)
    finally:
        await running.stop(0)


def rgb(width: int = 16, height: int = 12, seed: int = 0) -> common_pb2.RgbImage:
    """A random RGB image message."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return common_pb2.RgbImage(width=width, height=height, pixels=pixels.tobytes())


def stylize_request(model_version: str) -> inference_pb2.StylizeRequest:
    """A small valid Stylize request for `model_version`."""
    return inference_pb2.StylizeRequest(
        model_version=model_version,
        content=rgb(),
        styles=[inference_pb2.StyleInput(style_key="s", image=rgb(8, 8, seed=1))],
    )


def batch_request(model_version: str) -> inference_pb2.StylizeBatchRequest:
    """A small valid StylizeBatch request of two tiles for `model_version`."""
    return inference_pb2.StylizeBatchRequest(
        model_version=model_version,
        tiles=[rgb(seed=2), rgb(seed=3)],
        styles=[inference_pb2.StyleInput(style_key="s", image=rgb(8, 8, seed=1))],
    )
