"""Two jobs replicas (separate processes) share one rate limit through NATS, behind real
Envoy edges: REST meets 429 with Retry-After, native gRPC meets RESOURCE_EXHAUSTED, and
another user is unaffected.

The edge lists one jobs upstream, so each replica gets its own edge and the calls
alternate between the two edges: every replica serves half of them and only the shared
store can keep their sum within the plan.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2

from gouache.client import GouacheClient
from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from gouache.edge import Upstream
from gouache.runtime.ports import free_port
from tests.fixtures.envoy import EdgeFactory, RunningEdge
from tests.fixtures.nats import NatsServer
from tests.fixtures.processes import stop_process

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 60.0
# Product requirements §11.3: 60 requests per minute per user, bursts of 20 (the defaults).
PER_MINUTE, BURST = 60, 20


@dataclass
class Replicas:
    jobs_ports: list[int]
    edges: list[RunningEdge]
    admin_key: str
    bob_token: str


def _serving(port: int) -> bool:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def _start(name: str, env: dict[str, str], port: int, logs: Path) -> subprocess.Popen[bytes]:
    log = (logs / f"{name}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", f"services.{name.split('-')[0]}"],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _serving(port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process, 5)
            raise RuntimeError(f"{name} did not start:\n{(logs / f'{name}.log').read_text()}")
        time.sleep(0.1)
    return process


@pytest.fixture(scope="module")
def replicas(
    nats_server: NatsServer, envoy_edge: EdgeFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    state = tmp_path_factory.mktemp("replicas")
    logs = state / "logs"
    logs.mkdir()
    auth_port, jobs_ports = free_port(), [free_port(), free_port()]
    common = {
        "RATE_LIMIT_NATS_URL": nats_server.url,
        "LOG_LEVEL": "WARNING",
        "AUTH_ADDR": f"127.0.0.1:{auth_port}",
    }
    auth_env = {
        **{f"GOUACHE_AUTH_{k}": v for k, v in common.items()},
        "GOUACHE_AUTH_PORT": str(auth_port),
        "GOUACHE_AUTH_DATABASE_URL": f"sqlite+aiosqlite:///{state / 'auth.db'}",
        "GOUACHE_AUTH_SIGNING_KEY_PASSPHRASE": "replicas-test-passphrase",
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(_start("auth", auth_env, auth_port, logs))
        boot = subprocess.run(
            [sys.executable, "-m", "services.auth", "bootstrap", "--email", "a@x.io", "--json"],
            env={**os.environ, **auth_env},
            capture_output=True,
            check=True,
            timeout=START_TIMEOUT_S,
        )
        admin_key = str(json.loads(boot.stdout)["api_key"])
        for index, port in enumerate(jobs_ports):
            jobs_env = {
                **{f"GOUACHE_JOBS_{k}": v for k, v in common.items()},
                "GOUACHE_JOBS_PORT": str(port),
                "GOUACHE_JOBS_STATE_DIR": str(state),
                "GOUACHE_JOBS_NATS_URL": nats_server.url,
                "GOUACHE_JOBS_STORAGE_ADDR": f"127.0.0.1:{free_port()}",
            }
            # One after the other: the second replica finds the schema the first made.
            processes.append(_start(f"jobs-{index}", jobs_env, port, logs))
        edges = [
            envoy_edge(
                Upstream("127.0.0.1", port),
                Upstream("127.0.0.1", free_port()),
                auth=Upstream("127.0.0.1", auth_port),
            )
            for port in jobs_ports
        ]
        bob_token = _user_token(edges[0].base_url, admin_key)
        yield Replicas(jobs_ports, edges, admin_key, bob_token)
    finally:
        for process in reversed(processes):
            stop_process(process, 10)


def _token(http: httpx.Client, body: dict[str, str]) -> str:
    response = http.post("/v1/auth/token", json=body)
    response.raise_for_status()
    return str(response.json()["access_token"])


def _user_token(base_url: str, admin_key: str) -> str:
    """A second user, made by the admin, logged in with a password."""
    with httpx.Client(base_url=base_url, timeout=10) as http:
        admin = _token(http, {"grant_type": "client_credentials", "api_key": admin_key})
        created = http.post(
            "/v1/users",
            json={"email": "bob@x.io", "password": "bob-password-123", "role": "user"},
            headers={"authorization": f"Bearer {admin}"},
        )
        created.raise_for_status()
        return _token(
            http, {"grant_type": "password", "email": "bob@x.io", "password": "bob-password-123"}
        )


def test_replicas_share_one_limit_over_rest_and_grpc(replicas: Replicas) -> None:
    clients = [httpx.Client(base_url=edge.base_url, timeout=10) for edge in replicas.edges]
    try:
        token = _token(
            clients[0], {"grant_type": "client_credentials", "api_key": replicas.admin_key}
        )
        headers = {"authorization": f"Bearer {token}"}
        started = time.monotonic()
        responses = [clients[i % 2].get("/v1/models", headers=headers) for i in range(150)]
        elapsed = time.monotonic() - started
        admitted = [r.status_code == 200 for r in responses]
        limited = [r for r in responses if r.status_code == 429]
        assert len(limited) + sum(admitted) == 150, {r.status_code for r in responses}
        # Both replicas served calls, and together no more than one burst and the rate since.
        assert any(admitted[0::2])
        assert any(admitted[1::2])
        # The admin spent one call of its burst creating bob (the fixture).
        assert BURST - 1 <= sum(admitted) <= BURST + int(elapsed * PER_MINUTE / 60), elapsed

        refused = limited[-1]
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 60 // PER_MINUTE + 1
        body = refused.json()
        assert body["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert body["message"] == (
            f"rate limit of {PER_MINUTE} requests per minute for plan free exceeded; "
            f"retry in {retry_after} s"
        )
        assert any(d.get("reason") == "RATE_LIMITED" for d in body["details"]), body

        # Native gRPC to either replica: the same limit, already spent.
        for port in replicas.jobs_ports:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = jobs_pb2_grpc.JobsServiceStub(channel)
                with pytest.raises(grpc.RpcError) as caught:
                    stub.ListModels(
                        jobs_pb2.ListModelsRequest(),
                        metadata=(("authorization", f"Bearer {token}"),),
                        timeout=5,
                    )
            error = caught.value
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            trailers = dict(error.trailing_metadata())
            assert int(trailers["retry-after"]) >= 1
            status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
            retry = error_details_pb2.RetryInfo()
            assert any(detail.Unpack(retry) for detail in status.details)

        # Another user is unaffected, on both edges.
        for client in clients:
            other = client.get(
                "/v1/models", headers={"authorization": f"Bearer {replicas.bob_token}"}
            )
            assert other.status_code == 200, other.text
    finally:
        for client in clients:
            client.close()


def test_the_rest_client_waits_out_retry_after(replicas: Replicas) -> None:
    # The admin's burst is spent (the test above): each call now waits about one interval.
    with GouacheClient(replicas.edges[1].base_url, replicas.admin_key) as client:
        started = time.monotonic()
        for _ in range(3):
            assert client.list_models()["versions"]
        assert time.monotonic() - started >= 1.0
