"""What the shared rate limit adds to a call: ListModels on a jobs replica, limiting on vs off.

    .venv/bin/python loadtests/ratelimit_bench.py --calls 1000

Starts NATS, auth and two jobs processes on 127.0.0.1 (one with
GOUACHE_JOBS_RATE_LIMIT_NATS_URL, one without; plans so high nothing is refused), then
sends `--calls` native gRPC ListModels one after another to each, alternating rounds of 100,
and prints median and p95 in ms. The token carries an API key id, so each limited call
charges two keys (user and API key): read both, write both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gouache.cli.mesh import UNLIMITED_PLANS
from gouache.contracts.auth.v1 import auth_pb2, auth_pb2_grpc
from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from gouache.runtime.ports import free_ports

ROUND = 100


def _serving(port: int) -> bool:
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def _start(module: str, env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", module],
        env={**os.environ, **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not _serving(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{module} did not start; see {log}")
        time.sleep(0.1)
    return process


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="gouache-rl-bench-"))
    nats_port, auth_port, on_port, off_port = free_ports(4)
    nats_bin = Path(sys.executable).parent / "nats-server"
    processes = [
        subprocess.Popen(
            [
                str(nats_bin),
                "-js",
                "-sd",
                str(state / "nats"),
                "-a",
                "127.0.0.1",
                "-p",
                str(nats_port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    nats_url = f"nats://127.0.0.1:{nats_port}"
    auth_env = {
        "GOUACHE_AUTH_PORT": str(auth_port),
        "GOUACHE_AUTH_DATABASE_URL": f"sqlite+aiosqlite:///{state / 'auth.db'}",
        "GOUACHE_AUTH_SIGNING_KEY_PASSPHRASE": "bench-passphrase",
        "GOUACHE_AUTH_LOG_LEVEL": "WARNING",
    }
    try:
        processes.append(_start("services.auth", auth_env, auth_port, state / "auth.log"))
        boot = subprocess.run(
            [sys.executable, "-m", "services.auth", "bootstrap", "--email", "b@x.io", "--json"],
            env={**os.environ, **auth_env},
            capture_output=True,
            check=True,
        )
        api_key = json.loads(boot.stdout)["api_key"]
        for port, limited in ((on_port, True), (off_port, False)):
            env = {
                "GOUACHE_JOBS_PORT": str(port),
                "GOUACHE_JOBS_STATE_DIR": str(state),
                "GOUACHE_JOBS_NATS_URL": nats_url,
                "GOUACHE_JOBS_AUTH_ADDR": f"127.0.0.1:{auth_port}",
                "GOUACHE_JOBS_LOG_LEVEL": "WARNING",
                "GOUACHE_JOBS_RATE_LIMIT_PLANS": UNLIMITED_PLANS,
            }
            if limited:
                env["GOUACHE_JOBS_RATE_LIMIT_NATS_URL"] = nats_url
            processes.append(_start("services.jobs", env, port, state / f"jobs-{port}.log"))
        with grpc.insecure_channel(f"127.0.0.1:{auth_port}") as channel:
            token = (
                auth_pb2_grpc.AuthServiceStub(channel)
                .IssueToken(
                    auth_pb2.IssueTokenRequest(grant_type="client_credentials", api_key=api_key),
                    timeout=10,
                )
                .access_token
            )
        metadata = (("authorization", f"Bearer {token}"),)
        channels = {
            name: grpc.insecure_channel(f"127.0.0.1:{port}")
            for name, port in (("on", on_port), ("off", off_port))
        }
        stubs = {name: jobs_pb2_grpc.JobsServiceStub(ch) for name, ch in channels.items()}
        for stub in stubs.values():  # warm-up: connections, JWKS, the KV bucket
            for _ in range(50):
                stub.ListModels(jobs_pb2.ListModelsRequest(), metadata=metadata, timeout=10)
        samples: dict[str, list[float]] = {"on": [], "off": []}
        for _ in range(max(1, args.calls // ROUND)):
            for name, stub in stubs.items():
                for _ in range(ROUND):
                    started = time.perf_counter()
                    stub.ListModels(jobs_pb2.ListModelsRequest(), metadata=metadata, timeout=10)
                    samples[name].append((time.perf_counter() - started) * 1000)
        for ch in channels.values():
            ch.close()
        print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs")
        for name in ("off", "on"):
            values = samples[name]
            print(
                f"limiting {name:>3}: {len(values)} calls, median "
                f"{statistics.median(values):.2f} ms, p95 {np.percentile(values, 95):.2f} ms"
            )
        added = statistics.median(samples["on"]) - statistics.median(samples["off"])
        print(f"added by the limiter (median): {added:.2f} ms")
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
