"""Test images and an in-process storage service (gRPC and file server) for the storage tests."""

from __future__ import annotations

import functools
import io
import struct
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from PIL import Image

from gouache.contracts.storage.v1 import storage_pb2, storage_pb2_grpc
from gouache.runtime.auth import TokenVerifier
from gouache.runtime.server import RunningService, start_service
from services.storage.domain.screening import ContentScorer
from services.storage.safety import OpenNsfwScorer
from services.storage.server import StorageService, build_service
from services.storage.settings import StorageSettings
from tests.helpers.tokens import TestSigner

PUBLIC_URL = "https://edge.example"
SIGNING_KEY = "test-signing-key-0123456789abcdef0123456789"
SERVICE_SCOPES = ("internal",)


def image_bytes(
    fmt: str = "png", size: tuple[int, int] = (32, 24), seed: int = 0, mode: str = "RGB"
) -> bytes:
    """A small image with random pixels (different seeds give different bytes)."""
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt])
    return buffer.getvalue()


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A few hundred bytes of PNG whose header declares a huge image (a decompression bomb)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def image_of(reply: Any) -> storage_pb2.Image:
    """The Image of a GetImage reply, whether the contracts return it bare or wrapped."""
    return reply if isinstance(reply, storage_pb2.Image) else reply.image


def settings_for(root: Path, **overrides: Any) -> StorageSettings:
    """Settings for an in-process service under root, on free ports."""
    values: dict[str, Any] = {
        "port": 0,
        "http_port": 0,
        "state_dir": root,
        "public_url": PUBLIC_URL,
        "url_signing_key": SIGNING_KEY,
        "metrics_port": None,
    }
    values.update(overrides)
    return StorageSettings(**values)


@dataclass
class Harness:
    """A running storage service with a gRPC stub and token helpers."""

    settings: StorageSettings
    service: StorageService
    running: RunningService
    channel: grpc.aio.Channel
    signer: TestSigner

    @property
    def stub(self) -> storage_pb2_grpc.StorageServiceStub:
        return storage_pb2_grpc.StorageServiceStub(self.channel)

    @property
    def files_url(self) -> str:
        return self.service.files.base_url

    def local(self, url: str) -> str:
        """A URL handed out for the public edge, pointed at the in-process file server."""
        assert url.startswith(PUBLIC_URL), url
        return self.files_url + url[len(PUBLIC_URL) :]

    def token(self, user: str = "usr_alice", scopes: Sequence[str] | None = None) -> str:
        if scopes is None:
            return self.signer.token(user)
        return self.signer.token(user, scopes=scopes)

    def service_token(self, name: str = "usr_svc_tiling") -> str:
        return self.signer.token(name, role="service", scopes=SERVICE_SCOPES)

    def auth(self, user: str = "usr_alice") -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token(user)}"),)

    def service_auth(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.service_token()}"),)

    async def upload(
        self,
        data: bytes,
        *,
        metadata: tuple[tuple[str, str], ...],
        chunk_bytes: int = 16 * 1024,
        **header: str,
    ) -> storage_pb2.Image:
        """UploadImage with a header and data in chunks."""
        header.setdefault("filename", "photo.png")
        request = storage_pb2.UploadImageRequest(header=storage_pb2.UploadImageHeader(**header))

        async def messages() -> AsyncIterator[storage_pb2.UploadImageRequest]:
            yield request
            for start in range(0, len(data), chunk_bytes):
                yield storage_pb2.UploadImageRequest(chunk=data[start : start + chunk_bytes])

        response = await self.stub.UploadImage(messages(), metadata=metadata, timeout=10)
        return response.image

    async def download(self, image_id: str, metadata: tuple[tuple[str, str], ...]) -> bytes:
        parts = []
        async for message in self.stub.DownloadImage(
            storage_pb2.DownloadImageRequest(image_id=image_id), metadata=metadata, timeout=10
        ):
            parts.append(message.chunk)
        return b"".join(parts)

    def stored_files(self) -> list[Path]:
        """Every file under the blob root, temporary ones included."""
        root = self.settings.resolved_blob_root()
        return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


@functools.cache
def shared_scorer() -> OpenNsfwScorer:
    """The real NSFW classifier, loaded once per test process rather than once per service."""
    return OpenNsfwScorer.load()


async def start_harness(
    root: Path, *, scorer: ContentScorer | None = None, **overrides: Any
) -> Harness:
    """Builds and starts the service in-process with a TestSigner verifier and the real
    content-safety classifier (shared by the services a test process starts, or `scorer`)."""
    signer = TestSigner()
    settings = settings_for(root, **overrides)
    service = await build_service(
        settings, verifier=TokenVerifier(signer.fetch), scorer=scorer or shared_scorer()
    )
    running = await start_service(settings, service.spec, service.verifier)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    return Harness(settings, service, running, channel, signer)


async def stop_harness(harness: Harness) -> None:
    await harness.channel.close()
    await harness.running.stop(0)
