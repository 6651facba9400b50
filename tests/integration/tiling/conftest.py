"""A private NATS, real storage and inference in-process, and the tiling worker as a process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from pydantic import SecretStr

from gouache.bus import subjects
from gouache.bus.jetstream import connect, ensure_streams
from gouache.contracts.storage.v1 import storage_pb2, storage_pb2_grpc
from gouache.imaging import codec
from gouache.runtime.auth import TokenVerifier
from gouache.runtime.server import RunningService, start_service
from services.inference.server import build as build_inference
from services.inference.settings import InferenceSettings
from services.storage.server import StorageService, build_service
from services.storage.settings import StorageSettings
from tests.fixtures.nats import NatsServer, running_nats_server
from tests.helpers.tokens import TestSigner

REPO_ROOT = Path(__file__).resolve().parents[3]
FAST = "gatys.lite0-fast"
OWNER = "usr_alice"


@pytest.fixture(scope="package")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """This package's own NATS: the worker's durable consumer must see only these jobs."""
    with running_nats_server(tmp_path_factory.mktemp("tiling-nats")) as server:
        yield server


@pytest.fixture(scope="package")
def signer() -> TestSigner:
    return TestSigner()


@pytest.fixture(scope="package")
async def nats_js(nats_server: NatsServer) -> AsyncIterator[tuple[NATS, JetStreamContext]]:
    connection, js = await connect(nats_server.url, name="tiling-tests")
    await ensure_streams(js)
    try:
        yield connection, js
    finally:
        await connection.close()


@dataclass
class Mesh:
    """The services the worker talks to, and how to reach them."""

    storage: StorageService
    storage_port: int
    inference_port: int
    signer: TestSigner
    nats_url: str
    images: dict[str, np.ndarray] = field(default_factory=dict)

    def user_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.signer.token(OWNER)}"),)

    def service_token(self) -> str:
        return self.signer.token("usr_svc_tiling", role="service", scopes=("internal",), ttl_s=3600)

    async def upload(self, pixels: np.ndarray, kind: str) -> str:
        """Stores an image as the owner; returns its id."""
        data = codec.encode(pixels, "png")

        async def parts() -> AsyncIterator[storage_pb2.UploadImageRequest]:
            yield storage_pb2.UploadImageRequest(
                header=storage_pb2.UploadImageHeader(
                    filename=f"{kind}.png", content_type="image/png", kind=kind
                )
            )
            yield storage_pb2.UploadImageRequest(chunk=data)

        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.storage_port}") as channel:
            reply = await storage_pb2_grpc.StorageServiceStub(channel).UploadImage(
                parts(), metadata=self.user_metadata(), timeout=10
            )
        self.images[reply.image.image_id] = pixels
        return str(reply.image.image_id)

    async def download(self, image_id: str) -> bytes:
        """An image's bytes, read as its owner."""
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.storage_port}") as channel:
            stream = storage_pb2_grpc.StorageServiceStub(channel).DownloadImage(
                storage_pb2.DownloadImageRequest(image_id=image_id),
                metadata=self.user_metadata(),
                timeout=10,
            )
            return b"".join([part.chunk async for part in stream])


@pytest.fixture(scope="package")
async def mesh(
    nats_server: NatsServer,
    signer: TestSigner,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Mesh]:
    """Storage (SQLite and local blobs) and inference (gatys.lite0-fast, one thread)."""
    state = tmp_path_factory.mktemp("tiling-storage")
    storage_settings = StorageSettings(
        port=0,
        http_port=0,
        state_dir=state,
        url_signing_key=SecretStr("k" * 40),
        log_json=False,
    )
    storage = await build_service(storage_settings, verifier=TokenVerifier(signer.fetch))
    running_storage: RunningService = await start_service(
        storage_settings, storage.spec, storage.verifier
    )
    inference_settings = InferenceSettings(port=0, models=FAST, torch_threads=1)
    spec, verifier = await build_inference(inference_settings, verifier=TokenVerifier(signer.fetch))
    running_inference = await start_service(inference_settings, spec, verifier)
    try:
        yield Mesh(
            storage=storage,
            storage_port=running_storage.port,
            inference_port=running_inference.port,
            signer=signer,
            nats_url=nats_server.url,
        )
    finally:
        await running_inference.stop(0)
        await running_storage.stop(0)


class WorkerProcess:
    """`python -m services.tiling` with test settings; logs go to a file."""

    def __init__(self, mesh: Mesh, log_path: Path, *, ack_wait_s: float = 3.0) -> None:
        self._log_path = log_path
        self._env = {
            **os.environ,
            "GOUACHE_TILING_PORT": "0",
            "GOUACHE_TILING_NATS_URL": mesh.nats_url,
            "GOUACHE_TILING_STORAGE_ADDR": f"127.0.0.1:{mesh.storage_port}",
            "GOUACHE_TILING_INFERENCE_ADDR": f"127.0.0.1:{mesh.inference_port}",
            "GOUACHE_TILING_SERVICE_TOKEN": mesh.service_token(),
            "GOUACHE_TILING_ACK_WAIT_S": str(ack_wait_s),
            "GOUACHE_TILING_MAX_DELIVER": "5",
            "GOUACHE_TILING_BATCH_SIZE": "1",
            # A progress event after every tile: the crash test kills the worker mid-job.
            "GOUACHE_TILING_PROGRESS_INTERVAL_S": "0",
            "GOUACHE_TILING_RETRY_INITIAL_S": "0.5",
            "GOUACHE_TILING_GRACE_S": "2",
            "GOUACHE_TILING_LOG_LEVEL": "INFO",
        }
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "services.tiling"],
                cwd=REPO_ROOT,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def kill(self) -> None:
        """SIGKILL: no drain, no nak, no goodbye."""
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGKILL)
        self._process.wait(timeout=10)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        text = self._log_path.read_text(errors="replace") if self._log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def worker(mesh: Mesh, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(mesh, tmp_path / "tiling.log")
    try:
        yield process
    finally:
        process.stop()


async def wait_for(
    condition: Callable[[], Awaitable[bool]], *, within: float, what: str, worker: WorkerProcess
) -> None:
    """Polls an async condition until it is true, failing with the worker's log otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within}s waiting for {what}\n{worker.log_tail()}")


def picture(width: int, height: int, seed: int) -> np.ndarray:
    """Smooth colour fields with some texture, so stylization has something to work on."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [128 + 100 * np.sin(xs / 17.0), 128 + 100 * np.cos(ys / 23.0), (xs + ys) % 256], axis=-1
    )
    noise = rng.normal(0, 12, size=base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


async def execution_events(js: JetStreamContext, subject: str) -> list[Any]:
    """Every message stored on an execution subject, decoded."""
    message_type = subjects.MESSAGE_TYPES[subject]
    subscription = await js.pull_subscribe(
        subject, stream=subjects.EXECUTION_STREAM.name, config=None
    )
    found: list[Any] = []
    try:
        while True:
            try:
                batch = await subscription.fetch(batch=100, timeout=0.5)
            except TimeoutError:
                break
            for msg in batch:
                event = message_type()
                event.ParseFromString(msg.data)
                found.append(event)
                await msg.ack()
    finally:
        await subscription.unsubscribe()
    return found


async def for_job(js: JetStreamContext, subject: str, job_id: str) -> list[Any]:
    """The events of one job on an execution subject."""
    return [event for event in await execution_events(js, subject) if event.job_id == job_id]
