"""Chaos run: `gouache up` under load from several clients while its components are SIGKILLed.

Starts `gouache up` on free ports of 127.0.0.1 (a fresh state directory), uploads one content
and one style image, registers a webhook on a local receiver, and runs `--clients` clients
that each create a job (the `adain` alias, which runs wct.lite0-v1, or gatys-fast,
alternately), wait for it, and create the next.
Once `--warmup-jobs` jobs are final, each component of `--kill` is SIGKILLed in turn (or sent
another signal: `postgres:SIGINT` is PostgreSQL's fast shutdown, a clean stop that `gouache up`
answers with a restart); the run waits for `gouache up` to print it back, then for
`--jobs-between` more jobs to end, before the next kill. With `--backend postgres` the mesh runs
on its own PostgreSQL and MinIO, which are killed too (`POSTGRES_FAULTS` by default). Then the
clients stop and every job is checked:

- every created job id is final (none lost), and how many succeeded;
- one JobCreated, one ExecutionSucceeded and one JobSucceeded event per succeeded job on the
  JetStream streams, one webhook delivery id per job, one distinct result per job (none
  duplicated);
- `gouache up` is still running, having printed no crash loop.

    .venv/bin/python -m loadtests.chaos --clients 4 --rounds 3      # figures as JSON on stdout
    .venv/bin/python -m loadtests.chaos --backend postgres          # PostgreSQL and MinIO faults

The e2e test `tests/e2e/test_chaos.py` runs the same code with one round, bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the repository root holds tests/ and loadtests/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import nats

from gouache.cli.mesh import UNLIMITED_PLANS
from gouache.client import ApiError, GouacheClient
from gouache.contracts.events.v1 import events_pb2
from tests.e2e.images import small
from tests.fixtures.gouache_up import GouacheUp, mesh_ports

SERVICES_AND_NATS = ("tiling", "inference", "storage", "jobs", "auth", "feedback", "nats")
# The postgres backend's stores: PostgreSQL SIGKILLed, then stopped cleanly (SIGINT, a fast
# shutdown) and restarted by gouache up, then MinIO SIGKILLed.
POSTGRES_FAULTS = ("postgres", "postgres:SIGINT", "minio")
FINAL = ("succeeded", "failed", "canceled")
MODELS = ("adain", "gatys-fast")
# JetStream redelivers a job whose worker died after this long (30 s by default); shorter
# here so a run stays within minutes. Every other setting is gouache up's own.
ENV = {"GOUACHE_TILING_ACK_WAIT_S": "5"}


@dataclass
class ChaosOptions:
    clients: int = 4
    kills: Sequence[str] = SERVICES_AND_NATS
    rounds: int = 1
    warmup_jobs: int = 4
    jobs_between: int = 2
    image_side: int = 96
    recover_timeout_s: float = 120.0
    settle_timeout_s: float = 240.0


@dataclass
class JobRecord:
    job_id: str
    model: str
    client: int
    created_at: float
    ended_at: float | None = None
    status: str = "pending"
    error: str = ""
    result_url: str = ""


def parse_fault(fault: str) -> tuple[str, signal.Signals]:
    """`name` (SIGKILL) or `name:SIGNAL` (e.g. `postgres:SIGINT`): the component and signal."""
    name, _, sig = fault.partition(":")
    if not sig:
        return name, signal.SIGKILL
    sig = sig.upper()
    return name, signal.Signals[sig if sig.startswith("SIG") else f"SIG{sig}"]


@dataclass
class Kill:
    component: str
    at: float
    back_after_s: float
    signal: str = "SIGKILL"
    # Jobs created before the kill and final after it: the ones that lived through it.
    jobs_in_flight: int = 0


@dataclass
class ChaosReport:
    jobs: list[JobRecord] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    create_retries: int = 0
    poll_errors: int = 0
    client_errors: list[str] = field(default_factory=list)
    webhook_deliveries: dict[str, set[str]] = field(default_factory=dict)
    events: dict[str, Counter[str]] = field(default_factory=dict)
    up_running: bool = False
    crash_loop_lines: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # time.monotonic() when the run began; kills' `at` are reported from it.
    started: float = 0.0

    def final(self) -> list[JobRecord]:
        return [job for job in self.jobs if job.status in FINAL]

    def succeeded(self) -> list[JobRecord]:
        return [job for job in self.jobs if job.status == "succeeded"]

    def lost(self) -> list[JobRecord]:
        return [job for job in self.jobs if job.status not in FINAL]

    def duplicates(self) -> list[str]:
        """Every way a job was done twice: events, webhook deliveries, results."""
        found = []
        for subject, counts in self.events.items():
            found += [f"{subject}: {n} events for {job}" for job, n in counts.items() if n > 1]
        for job_id, deliveries in self.webhook_deliveries.items():
            if len(deliveries) > 1:
                found.append(f"webhook: {len(deliveries)} deliveries for {job_id}")
        results = Counter(job.result_url for job in self.succeeded())
        found += [f"result {url} shared by {n} jobs" for url, n in results.items() if n > 1]
        return found

    def missing_events(self) -> list[str]:
        """Succeeded jobs without their created, execution and success events."""
        missing = []
        for job in self.succeeded():
            for subject, counts in self.events.items():
                if counts[job.job_id] != 1:
                    missing.append(f"{subject}: {counts[job.job_id]} events for {job.job_id}")
            if len(self.webhook_deliveries.get(job.job_id, ())) != 1:
                missing.append(f"webhook: no delivery for {job.job_id}")
        return missing

    def latencies(self, *, during_faults: bool) -> list[float]:
        """End-to-end seconds (create → final as the client saw it) of succeeded jobs that
        overlapped a fault window (kill → back), or that did not."""
        windows = [(k.at, k.at + k.back_after_s) for k in self.kills]
        chosen = []
        for job in self.succeeded():
            assert job.ended_at is not None
            overlaps = any(
                job.created_at <= end and job.ended_at >= start for start, end in windows
            )
            if overlaps == during_faults:
                chosen.append(job.ended_at - job.created_at)
        return chosen

    def summary(self) -> dict[str, Any]:
        def stats(values: list[float]) -> dict[str, float | int]:
            if not values:
                return {"jobs": 0}
            ordered = sorted(values)
            return {
                "jobs": len(values),
                "median_s": round(statistics.median(ordered), 2),
                "p95_s": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 2),
                "max_s": round(ordered[-1], 2),
            }

        return {
            "jobs": len(self.jobs),
            "by_status": dict(Counter(job.status for job in self.jobs)),
            "lost": [job.job_id for job in self.lost()],
            "duplicates": self.duplicates(),
            "missing_events": self.missing_events(),
            "kills": [
                {**asdict(kill), "at": round(kill.at - self.started, 1)} for kill in self.kills
            ],
            "latency_calm": stats(self.latencies(during_faults=False)),
            "latency_during_faults": stats(self.latencies(during_faults=True)),
            "create_retries": self.create_retries,
            "poll_errors": self.poll_errors,
            "client_errors": self.client_errors,
            "up_running": self.up_running,
            "crash_loop_lines": self.crash_loop_lines,
            "seconds": round(self.seconds, 1),
            "failed": [f"{j.job_id}: {j.error}" for j in self.jobs if j.status == "failed"],
        }


class _WebhookReceiver:
    """Records X-Gouache-Delivery ids per job id from POSTed job events."""

    def __init__(self) -> None:
        self.deliveries: dict[str, set[str]] = {}
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with lock:
                    receiver.deliveries.setdefault(body["job"]["job_id"], set()).add(
                        self.headers["x-gouache-delivery"]
                    )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Load:
    """`clients` threads, each creating a job, waiting for it to end, and creating the next."""

    def __init__(self, base_url: str, api_key: str, content: str, style: str, clients: int):
        self._base_url = base_url
        self._api_key = api_key
        self._content = content
        self._style = style
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.jobs: list[JobRecord] = []
        self.create_retries = 0
        self.poll_errors = 0
        # Refusals (4xx) of a create: a bug in the run or the mesh; that client stops.
        self.client_errors: list[str] = []
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def final_count(self) -> int:
        with self._lock:
            return sum(job.status in FINAL for job in self.jobs)

    def _client(self, index: int) -> None:
        with GouacheClient(self._base_url, self._api_key, timeout_s=30) as client:
            number = 0
            while not self._stop.is_set():
                model = MODELS[(index + number) % len(MODELS)]
                number += 1
                job = self._create(client, index, model)
                if job is None:
                    return
                self._wait(client, job)

    def _create(self, client: GouacheClient, index: int, model: str) -> JobRecord | None:
        """Creates one job, retrying with the same idempotency key while the mesh is down."""
        key = uuid.uuid4().hex
        created_at = time.monotonic()
        while True:
            try:
                created = client.create_job(
                    self._content,
                    [self._style],
                    model_version=model,
                    params={"seed": 1},
                    idempotency_key=key,
                    no_cache=True,  # every job must cross the components being killed
                )
            except (httpx.HTTPError, ApiError) as exc:
                if isinstance(exc, ApiError) and exc.status < 500:
                    with self._lock:
                        self.client_errors.append(str(exc))
                    return None
                with self._lock:
                    self.create_retries += 1
                if self._stop.is_set():
                    return None
                time.sleep(0.2)
                continue
            job = JobRecord(str(created["job_id"]), model, index, created_at)
            with self._lock:
                self.jobs.append(job)
            return job

    def _wait(self, client: GouacheClient, job: JobRecord) -> None:
        """Polls the job until it is final, riding out the mesh's own restarts."""
        while True:
            try:
                seen = client.get_job(job.job_id)
            except (httpx.HTTPError, ApiError):
                with self._lock:
                    self.poll_errors += 1
                time.sleep(0.2)
                continue
            if seen.get("status") in FINAL:
                with self._lock:
                    job.ended_at = time.monotonic()
                    job.status = str(seen["status"])
                    job.error = str(seen.get("error") or "")
                    job.result_url = str(seen.get("result_url") or "")
                return
            time.sleep(0.2)


def _wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout_s:.0f} s")
        time.sleep(0.1)


async def _count_events(
    nats_port: int, subjects_and_types: dict[str, Any]
) -> dict[str, Counter[str]]:
    """Job ids of every event on each subject, read with a throwaway consumer."""
    connection = await nats.connect(f"nats://127.0.0.1:{nats_port}")
    counts: dict[str, Counter[str]] = {}
    try:
        js = connection.jetstream()
        for subject, message_type in subjects_and_types.items():
            counter: Counter[str] = Counter()
            subscription = await js.pull_subscribe(subject, durable=None)
            while True:
                try:
                    batch = await subscription.fetch(200, timeout=1)
                except TimeoutError:
                    break
                for msg in batch:
                    counter[message_type.FromString(msg.data).job_id] += 1
                    await msg.ack()
            await subscription.unsubscribe()
            counts[subject] = counter
    finally:
        await connection.close()
    return counts


def run_chaos(up: GouacheUp, options: ChaosOptions) -> ChaosReport:
    """Drives load through a started `gouache up` and kills its components; the figures."""
    started = time.monotonic()
    report = ChaosReport(started=started)
    api_key = json.loads((up.state_dir / "credentials.json").read_text())["api_key"]
    receiver = _WebhookReceiver()
    try:
        with GouacheClient(up.base_url, api_key) as admin:
            content = admin.upload(small("astronaut", options.image_side), filename="c.png")
            style = admin.upload(small("coffee", 64), filename="s.png", kind="style")
            hook = httpx.post(
                f"{up.base_url}/v1/webhooks",
                headers={"authorization": f"Bearer {admin.token()}"},
                json={
                    "url": receiver.url,
                    "secret": "chaos-secret-0123456789",
                    "events": ["job.succeeded", "job.failed"],
                },
            )
            hook.raise_for_status()
        load = _Load(up.base_url, api_key, content, style, options.clients)
        load.start()
        _wait_until(
            lambda: load.final_count() >= options.warmup_jobs,
            options.settle_timeout_s,
            f"fewer than {options.warmup_jobs} jobs final before any fault",
        )
        for _round in range(options.rounds):
            for fault in options.kills:
                name, sig = parse_fault(fault)
                mark = len(up.lines)
                killed_at = time.monotonic()
                up.kill(name, sig)
                back = up.wait_for(
                    rf"✓ {re.escape(name)} back after (\d+\.\d) s",
                    options.recover_timeout_s,
                    after=mark,
                )
                report.kills.append(Kill(name, killed_at, float(back[1]), sig.name))
                done = load.final_count()
                _wait_until(
                    lambda done=done: load.final_count() >= done + options.jobs_between,
                    options.settle_timeout_s,
                    f"fewer than {options.jobs_between} jobs final after {name} came back",
                )
        load.stop(options.settle_timeout_s)
        report.jobs = list(load.jobs)
        report.create_retries = load.create_retries
        report.poll_errors = load.poll_errors
        report.client_errors = list(load.client_errors)
        for kill in report.kills:
            kill.jobs_in_flight = sum(
                job.created_at <= kill.at and (job.ended_at or 0) >= kill.at for job in report.jobs
            )
        # Webhooks of the last jobs may still be on their way.
        final = {job.job_id for job in report.final()}
        _wait_until(lambda: final <= set(receiver.deliveries), 30, "webhook deliveries missing")
        report.webhook_deliveries = {k: set(v) for k, v in receiver.deliveries.items()}
    finally:
        receiver.close()
    report.events = asyncio.run(
        _count_events(
            up.ports["nats-port"],
            {
                # Every priority class: gouache.jobs.created.<lane>.<tier>.
                "gouache.jobs.created.>": events_pb2.JobCreated,
                "gouache.execution.succeeded": events_pb2.ExecutionSucceeded,
                "gouache.jobs.succeeded": events_pb2.JobSucceeded,
            },
        )
    )
    report.up_running = up.process.poll() is None
    report.crash_loop_lines = [line for line in up.lines if "giving up" in line]
    report.seconds = time.monotonic() - started
    return report


def start_up(state_dir: Path, backend: str = "local") -> GouacheUp:
    """`gouache up` on free ports with the fast models and no rate limits, ready.

    With backend "postgres", PostgreSQL runs as the 'postgres' account under root, and that
    account must be able to reach state_dir (see reachable_state_dir in the fixtures)."""
    up = GouacheUp(
        state_dir,
        mesh_ports(),
        extra_args=[
            "--models",
            "wct.lite0-v1,gatys.lite0-fast",
            "--rate-limit-plans",
            UNLIMITED_PLANS,
            "--backend",
            backend,
        ],
        env=ENV,
    )
    up.wait_for(r"^ready", 300)
    return up


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1, help="times every component is killed")
    parser.add_argument("--backend", choices=("local", "postgres"), default="local")
    parser.add_argument(
        "--kill",
        help="components, in order, each NAME (SIGKILL) or NAME:SIGNAL; also envoy (default: "
        "the six services and NATS, then with --backend postgres: " + ",".join(POSTGRES_FAULTS),
    )
    parser.add_argument("--jobs-between", type=int, default=2)
    parser.add_argument("--state-dir", help="default: a new temporary directory")
    args = parser.parse_args(argv)
    kills = args.kill or ",".join(
        SERVICES_AND_NATS + (POSTGRES_FAULTS if args.backend == "postgres" else ())
    )
    options = ChaosOptions(
        clients=args.clients,
        kills=tuple(name for name in kills.split(",") if name),
        rounds=args.rounds,
        jobs_between=args.jobs_between,
    )
    state = Path(args.state_dir or tempfile.mkdtemp(prefix="gouache-chaos-"))
    if not args.state_dir:
        state.chmod(0o711)  # PostgreSQL's account (under root) passes through to its data
    up = start_up(state, args.backend)
    try:
        report = run_chaos(up, options)
    finally:
        code = up.stop()
    summary = report.summary()
    summary.update(
        {
            "machine": f"{platform.machine()}, {platform.processor() or '?'}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
            "command": " ".join(["python -m loadtests.chaos", *(argv or sys.argv[1:])]),
            "date": time.strftime("%Y-%m-%d"),
            "gouache_up_exit_code": code,
        }
    )
    print(json.dumps(summary, indent=2))
    clean = not (summary["lost"] or summary["duplicates"] or summary["missing_events"])
    return 0 if clean and report.up_running else 1


if __name__ == "__main__":
    sys.exit(main())
