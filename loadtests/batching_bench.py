"""Dynamic micro-batching in inference: 512 px adain at 1, 4 and 16 clients, batching off and on.

    .venv/bin/python -m loadtests.batching_bench
    .venv/bin/python -m loadtests.batching_bench --seconds 20 --append loadtests/RESULTS.md

For each setting (`--settings`, default off = max batch 1, and on = max batch 8 with no
queue delay, and max batch 8 with a 10 ms delay) an inference server is started as its
own process on a free 127.0.0.1 port (`python -m services.inference`'s build and serve,
with a verifier that trusts a key made for this run instead of the auth service), serving
`--model` with ONNX Runtime on `--threads` intra-op threads. Then, per client count
(`--clients`, default 1 4 16), that many concurrent gRPC clients each send StylizeBatch
calls of one `--side` px tile (what tiling sends for a 512 px adain job), the style
from two alternating style images (keyed, so statistics are cached as in serving), for
`--seconds` after `--warmup` calls each, in `--rounds` rounds that alternate the
settings' servers (all started up front), so a shared machine's changing load falls on
every setting alike. Printed per case: images/s (completed images over the measured wall
time), p50 and p95 latency of a call, and the mean batch size and queue delay from the
server's own `gouache_inference_batch_size` and `gouache_inference_queue_delay_seconds`
histograms. Clients and server share the machine's cores, as tiling and inference do in
the embedded mesh.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.inference.v1 import inference_pb2, inference_pb2_grpc
from gouache.nst.machine import cpu_model
from gouache.runtime.ports import free_ports
from tests.helpers.tokens import TestSigner

REPO = Path(__file__).resolve().parents[1]

SETTINGS = {
    "off": {"max_batch_size": 1, "max_queue_delay_ms": 0.0},
    "on": {"max_batch_size": 8, "max_queue_delay_ms": 0.0},
    "on-10ms": {"max_batch_size": 8, "max_queue_delay_ms": 10.0},
}
"""Named batching settings a run can compare (`--settings`)."""


@dataclass(frozen=True)
class Case:
    """One measured (setting, clients) pair."""

    setting: str
    clients: int
    images: int
    seconds: float
    p50_ms: float
    p95_ms: float
    mean_batch: float
    mean_queue_ms: float
    errors: int

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def _serve(args: argparse.Namespace) -> None:
    """The child: an inference server whose verifier trusts the JWKS in `--jwks`."""
    from gouache.runtime.auth import TokenVerifier
    from gouache.runtime.logging import configure_logging
    from gouache.runtime.server import serve
    from services.inference.server import build
    from services.inference.settings import InferenceSettings

    jwks = json.loads(Path(args.jwks).read_text())

    async def fetch() -> Sequence[Mapping[str, Any]]:
        return list(jwks)

    async def main() -> None:
        settings = InferenceSettings()
        configure_logging("inference", level="WARNING", json_output=True)
        spec, verifier = await build(settings, verifier=TokenVerifier(fetch))
        await serve(settings, spec, verifier)

    asyncio.run(main())


def _serving(port: int) -> bool:
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def _start_server(
    setting: Mapping[str, float], args: argparse.Namespace, jwks: Path, log: Path
) -> tuple[subprocess.Popen[bytes], int, int]:
    port, metrics_port = free_ports(2)
    env = {
        **os.environ,
        "GOUACHE_INFERENCE_PORT": str(port),
        "GOUACHE_INFERENCE_METRICS_PORT": str(metrics_port),
        "GOUACHE_INFERENCE_MODELS": args.model,
        "GOUACHE_INFERENCE_RUNTIME": "onnx",
        "GOUACHE_INFERENCE_TORCH_THREADS": str(args.threads),
        "GOUACHE_INFERENCE_MAX_BATCH_SIZE": str(int(setting["max_batch_size"])),
        "GOUACHE_INFERENCE_MAX_QUEUE_DELAY_MS": str(setting["max_queue_delay_ms"]),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "loadtests.batching_bench", "--serve", "--jwks", str(jwks)],
        env=env,
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180
    while not _serving(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"the inference server did not start; see {log}")
        time.sleep(0.2)
    return process, port, metrics_port


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _histograms(metrics_port: int, model: str) -> dict[str, float]:
    """Sums and counts of the batch-size and queue-delay histograms for `model`."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (
            "gouache_inference_batch_size",
            "gouache_inference_queue_delay_seconds",
        ):
            continue
        for sample in family.samples:
            if sample.labels.get("model_version") == model and sample.name.endswith(
                ("_sum", "_count")
            ):
                found[sample.name] = sample.value
    return found


def _images(side: int) -> tuple[common_pb2.RgbImage, list[inference_pb2.StyleInput]]:
    from skimage import data, transform

    def rgb(pixels: np.ndarray) -> common_pb2.RgbImage:
        resized = transform.resize(pixels, (side, side), anti_aliasing=True)
        array = np.ascontiguousarray((resized * 255).round().astype(np.uint8))
        return common_pb2.RgbImage(width=side, height=side, pixels=array.tobytes())

    content = rgb(data.astronaut())
    styles = [
        inference_pb2.StyleInput(style_key=f"bench-style-{name}", image=rgb(image))
        for name, image in (("hubble", data.hubble_deep_field()), ("coffee", data.coffee()))
    ]
    return content, styles


async def _drive(
    port: int,
    clients: int,
    args: argparse.Namespace,
    token: str,
    content: common_pb2.RgbImage,
    styles: Sequence[inference_pb2.StyleInput],
    *,
    seconds: float,
    warmup: int,
) -> tuple[list[float], int, float]:
    """Runs `clients` concurrent callers; (latencies of measured calls, errors, seconds)."""
    metadata = (("authorization", f"Bearer {token}"),)
    options = [
        ("grpc.max_send_message_length", 64 << 20),
        ("grpc.max_receive_message_length", 64 << 20),
    ]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)

        def request(index: int) -> inference_pb2.StylizeBatchRequest:
            return inference_pb2.StylizeBatchRequest(
                model_version=args.model, tiles=[content], styles=[styles[index % len(styles)]]
            )

        async def warm(index: int) -> None:
            for _ in range(warmup):
                await stub.StylizeBatch(request(index), metadata=metadata, timeout=120)

        await asyncio.gather(*(warm(i) for i in range(clients)))
        latencies: list[float] = []
        errors = 0
        started = time.perf_counter()
        stop_at = started + seconds

        async def client(index: int) -> None:
            nonlocal errors
            calls = 0
            while time.perf_counter() < stop_at and (args.calls == 0 or calls < args.calls):
                sent = time.perf_counter()
                try:
                    await stub.StylizeBatch(request(index), metadata=metadata, timeout=120)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - sent)
                calls += 1

        await asyncio.gather(*(client(i) for i in range(clients)))
        return latencies, errors, time.perf_counter() - started


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


@dataclass
class _Tally:
    """What the rounds of one (setting, clients) case add up to."""

    latencies: list[float]
    errors: int = 0
    seconds: float = 0.0
    histograms: dict[str, float] | None = None

    def add_histograms(self, before: Mapping[str, float], after: Mapping[str, float]) -> None:
        totals = self.histograms if self.histograms is not None else {}
        for key, value in after.items():
            totals[key] = totals.get(key, 0.0) + value - before.get(key, 0.0)
        self.histograms = totals

    def case(self, setting: str, clients: int) -> Case:
        totals = self.histograms or {}

        def mean(name: str, scale: float = 1.0) -> float:
            count = totals.get(f"{name}_count", 0.0)
            return scale * totals.get(f"{name}_sum", 0.0) / count if count else float("nan")

        return Case(
            setting=setting,
            clients=clients,
            images=len(self.latencies),
            seconds=self.seconds,
            p50_ms=_percentile(self.latencies, 50) * 1000,
            p95_ms=_percentile(self.latencies, 95) * 1000,
            mean_batch=mean("gouache_inference_batch_size"),
            mean_queue_ms=mean("gouache_inference_queue_delay_seconds", 1000.0),
            errors=self.errors,
        )


def run(args: argparse.Namespace) -> list[Case]:
    """Starts one server per setting, then per client count alternates them round by round.

    Rounds (`--rounds`, each `--seconds / --rounds` long) interleave the settings, so
    load from the rest of a shared machine falls on every setting alike.
    """
    signer = TestSigner()
    token = signer.token(sub="svc_batching_bench", role="service", scopes=("internal",), ttl_s=3600)
    content, styles = _images(args.side)
    cases: list[Case] = []
    servers: dict[str, tuple[subprocess.Popen[bytes], int, int]] = {}
    with tempfile.TemporaryDirectory(prefix="gouache-batching-bench-") as scratch:
        jwks = Path(scratch) / "jwks.json"
        jwks.write_text(json.dumps(signer.jwks()))
        try:
            for name in args.settings:
                servers[name] = _start_server(SETTINGS[name], args, jwks, Path(args.log))
            for clients in args.clients:
                tallies = {name: _Tally(latencies=[]) for name in args.settings}
                for round_ in range(args.rounds):
                    for name, (_, port, metrics_port) in servers.items():
                        before = _histograms(metrics_port, args.model)
                        latencies, errors, seconds = asyncio.run(
                            _drive(
                                port,
                                clients,
                                args,
                                token,
                                content,
                                styles,
                                seconds=args.seconds / args.rounds,
                                warmup=args.warmup if round_ == 0 else 0,
                            )
                        )
                        tally = tallies[name]
                        tally.add_histograms(before, _histograms(metrics_port, args.model))
                        tally.latencies += latencies
                        tally.errors += errors
                        tally.seconds += seconds
                for name, tally in tallies.items():
                    cases.append(tally.case(name, clients))
                    print(_row(cases[-1]), flush=True)
        finally:
            for process, _, _ in servers.values():
                _stop(process)
    return cases


HEADER = (
    "| batching | clients | images/s | p50 ms | p95 ms | mean batch | mean queue ms | errors |\n"
    "|---|---|---|---|---|---|---|---|"
)


def _row(case: Case) -> str:
    return (
        f"| {case.setting} | {case.clients} | {case.images_per_s:.2f} | {case.p50_ms:.0f} | "
        f"{case.p95_ms:.0f} | {case.mean_batch:.2f} | {case.mean_queue_ms:.1f} | {case.errors} |"
    )


def report(
    cases: Sequence[Case], args: argparse.Namespace, argv: Sequence[str], engine_table: str = ""
) -> str:
    """The Markdown section: command, machine, settings, the table."""
    settings = "; ".join(
        f"{name}: max batch {int(SETTINGS[name]['max_batch_size'])}, delay "
        f"{SETTINGS[name]['max_queue_delay_ms']:g} ms"
        for name in args.settings
    )
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    lines = [
        f"### Micro-batching, {args.model}, {args.side} px, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`{shlex.join(['.venv/bin/python', '-m', 'loadtests.batching_bench', *argv])}`",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}; load average after the run {load}. ONNX Runtime, "
        f"{args.threads} intra-op threads."
        + (
            f" Server: max concurrency 1; {settings}; {args.seconds:g} s per case in "
            f"{args.rounds} rounds alternating the settings, after {args.warmup} warm-up "
            "calls per client."
            if cases
            else ""
        ),
        "",
    ]
    if engine_table:
        lines += [
            f"The engine alone, medians of {args.engine_runs} rounds: B `stylize` calls "
            "one after another against one `stylize_batch` of the same B items.",
            "",
            engine_table,
            "",
        ]
    if cases:
        lines += [HEADER, *(_row(case) for case in cases), ""]
    return "\n".join(lines)


ENGINE_MODELS = ("adain.lite0-v1", "feedforward.lite0-v1")


def engine(args: argparse.Namespace) -> str:
    """The engine alone: B `stylize` calls against one `stylize_batch` of B, per model.

    Same process, same family (ONNX Runtime, `--threads`), the items differing in
    content only; the cases of one model alternate round by round so the machine's load
    falls on both alike. Returns the Markdown table.
    """
    from skimage import data, transform

    from gouache.nst.base import StylizeControls, trained_style_keys
    from gouache.nst.batching import StylizeItem
    from gouache.nst.onnx_runtime import build_family

    def image(pixels: np.ndarray) -> np.ndarray:
        resized = transform.resize(pixels, (args.side, args.side), anti_aliasing=True)
        return np.ascontiguousarray((resized * 255).round().astype(np.uint8))

    contents = [image(data.astronaut()), image(data.chelsea()), image(data.coffee())]
    style = image(data.hubble_deep_field())
    lines = [
        "| model | batch | B x stylize ms | stylize_batch ms | images/s single | images/s batched "
        "| gain |",
        "|---|---|---|---|---|---|---|",
    ]
    for model in ENGINE_MODELS:
        family = build_family(model, runtime="onnx", threads=args.threads)
        keys = list(trained_style_keys(family)[:1]) or ["bench-style"]
        for size in args.engine_batches:
            items = [
                StylizeItem(contents[i % len(contents)], [style], [1.0], StylizeControls(), keys)
                for i in range(size)
            ]
            single: list[float] = []
            batched: list[float] = []
            for round_ in range(args.engine_runs + 1):
                started = time.perf_counter()
                for item in items:
                    family.stylize(
                        item.content, item.styles, item.weights, item.controls, style_keys=keys
                    )
                middle = time.perf_counter()
                family.stylize_batch(items)  # type: ignore[attr-defined]
                ended = time.perf_counter()
                if round_ > 0:  # the first round warms both paths up
                    single.append(middle - started)
                    batched.append(ended - middle)
            one, many = float(np.median(single)), float(np.median(batched))
            lines.append(
                f"| {model} | {size} | {one * 1000:.0f} | {many * 1000:.0f} | "
                f"{size / one:.2f} | {size / many:.2f} | {one / many:.2f}x |"
            )
            print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--jwks", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="adain.lite0-v1")
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--seconds", type=float, default=15.0, help="measured time per case")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds per case, the settings alternating"
    )
    parser.add_argument("--calls", type=int, default=0, help="stop each client after this many")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured calls per client")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--log", default=str(Path(tempfile.gettempdir()) / "batching_bench.log"))
    parser.add_argument("--append", type=Path, help="append the report to this Markdown file")
    parser.add_argument(
        "--engine",
        action="store_true",
        help="measure the engine alone (B stylize calls vs one stylize_batch of B) first",
    )
    parser.add_argument("--engine-batches", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--engine-runs", type=int, default=5, help="timed rounds per case")
    parser.add_argument(
        "--no-service", action="store_true", help="skip the gRPC cases (with --engine)"
    )
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    if args.serve:
        _serve(args)
        return 0
    engine_table = engine(args) if args.engine else ""
    cases: list[Case] = []
    if not args.no_service:
        print(HEADER, flush=True)
        cases = run(args)
    section = report(cases, args, raw, engine_table)
    print()
    print(section)
    if args.append is not None:
        with args.append.open("a") as handle:
            handle.write("\n" + section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
