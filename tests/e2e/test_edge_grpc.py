"""Partners over native gRPC through the Envoy edge, in front of the real mesh: the SDK
reaches every public service, grpcurl lists and calls them by reflection, tokens are checked
as over REST, and the internal services stay out of reach."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import grpc
import pytest

from gouache.cli.mesh import Mesh
from gouache.client import GouacheGrpc
from gouache.contracts.auth.v1 import auth_pb2
from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.feedback.v1 import feedback_pb2
from gouache.contracts.inference.v1 import inference_pb2, inference_pb2_grpc
from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from gouache.contracts.storage.v1 import storage_pb2
from gouache.contracts.tiling.v1 import tiling_pb2, tiling_pb2_grpc
from gouache.edge import GRPC_SERVICES
from tests.e2e.images import small

pytestmark = pytest.mark.slow

GRPCURL = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "grpcurl"
# Reflection and a call through the edge take well under a second; a stream held by the
# JSON buffer would wait for grpcurl's -max-time instead.
GRPCURL_MAX_S = 5.0


def _edge(mesh: Mesh) -> str:
    return f"127.0.0.1:{mesh.config.ports.envoy}"


def _api_key(mesh: Mesh) -> str:
    assert mesh.credentials is not None
    return mesh.credentials.admin_api_key


def _grpcurl(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    if not (GRPCURL.is_file() and os.access(GRPCURL, os.X_OK)):
        pytest.skip(f"{GRPCURL} is absent (scripts/ensure-tools.sh builds it)")
    started = time.monotonic()
    done = subprocess.run(
        [str(GRPCURL), "-plaintext", "-max-time", str(GRPCURL_MAX_S), *args],
        capture_output=True,
        text=True,
        timeout=GRPCURL_MAX_S + 5,
        check=False,
    )
    return done, time.monotonic() - started


def test_grpcurl_lists_the_public_services_through_the_edge(mesh: Mesh) -> None:
    done, elapsed = _grpcurl(_edge(mesh), "list")

    assert done.returncode == 0, done.stderr
    listed = set(done.stdout.split())
    assert set(GRPC_SERVICES.values()) <= listed
    assert not any("tiling" in name or "inference" in name for name in listed)
    assert elapsed < GRPCURL_MAX_S


def test_grpcurl_calls_list_models_with_a_bearer_token(mesh: Mesh) -> None:
    with GouacheGrpc(_edge(mesh), _api_key(mesh)) as client:
        token = client.tokens.token()

    done, elapsed = _grpcurl(
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        "{}",
        _edge(mesh),
        "gouache.jobs.v1.JobsService/ListModels",
    )

    assert done.returncode == 0, done.stderr
    versions = {version["name"] for version in json.loads(done.stdout)["versions"]}
    assert "adain.lite0-v1" in versions
    assert elapsed < GRPCURL_MAX_S


def test_grpcurl_checks_the_edge_health(mesh: Mesh) -> None:
    done, elapsed = _grpcurl(_edge(mesh), "grpc.health.v1.Health/Check")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"status": "SERVING"}
    assert elapsed < GRPCURL_MAX_S


def test_the_sdk_reaches_every_public_service_through_the_edge(mesh: Mesh) -> None:
    with GouacheGrpc(_edge(mesh), _api_key(mesh), timeout_s=30) as client:
        me = client.auth.WhoAmI(auth_pb2.WhoAmIRequest(), timeout=10)
        content = client.upload_image(
            small("rocket", 64), filename="rocket.png", content_type="image/png"
        )
        style = client.upload_image(
            small("immunohistochemistry", 64),
            filename="ihc.png",
            content_type="image/png",
            kind="style",
        )
        stored = client.storage.GetImage(
            storage_pb2.GetImageRequest(image_id=content.image_id), timeout=10
        )
        models = client.jobs.ListModels(jobs_pb2.ListModelsRequest(), timeout=10)
        created = client.jobs.CreateJob(
            jobs_pb2.CreateJobRequest(
                content_url=content.file_url,
                style_urls=[style.file_url],
                model_version="adain",
                params=common_pb2.StylizeParams(alpha=0.8, seed=1),
                idempotency_key=uuid.uuid4().hex,
            ),
            timeout=10,
        )
        statuses = [
            update.job.status
            for update in client.jobs.WatchJob(
                jobs_pb2.WatchJobRequest(job_id=created.job_id), timeout=240
            )
        ]
        downloaded = b"".join(
            part.chunk
            for part in client.storage.DownloadImage(
                storage_pb2.DownloadImageRequest(image_id=content.image_id), timeout=30
            )
        )
        rated = client.feedback.SubmitFeedback(
            feedback_pb2.SubmitFeedbackRequest(job_id=created.job_id, rating=5), timeout=10
        )

    assert me.role == "admin"
    assert stored.sha256 == content.sha256
    assert hashlib.sha256(downloaded).hexdigest() == content.sha256
    assert any(version.name == "adain.lite0-v1" for version in models.versions)
    assert statuses[-1] == "succeeded", statuses
    assert (rated.job_id, rated.rating) == (created.job_id, 5)
    assert rated.feedback_id


def test_a_native_call_without_a_token_is_unauthenticated(mesh: Mesh) -> None:
    with grpc.insecure_channel(_edge(mesh)) as channel:
        jobs = jobs_pb2_grpc.JobsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            jobs.ListModels(jobs_pb2.ListModelsRequest(), timeout=5)

    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_internal_services_are_unreachable_through_the_edge(mesh: Mesh) -> None:
    with GouacheGrpc(_edge(mesh), _api_key(mesh)) as client:
        tiling = tiling_pb2_grpc.TilingServiceStub(client.channel)
        inference = inference_pb2_grpc.InferenceServiceStub(client.channel)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as tiling_call:
            tiling.GetWorkerStatus(tiling_pb2.GetWorkerStatusRequest(), timeout=10)
        with pytest.raises(grpc.RpcError) as inference_call:
            inference.ListLoadedModels(inference_pb2.ListLoadedModelsRequest(), timeout=10)
        elapsed = time.monotonic() - started

    assert tiling_call.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert inference_call.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert elapsed < 2.0
