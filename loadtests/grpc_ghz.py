"""ghz against the gRPC read path: JobsService.ListModels with a bearer token.

    .venv/bin/python -m loadtests.grpc_ghz --calls 2000 --concurrency 16

Starts a private embedded mesh on free ports of 127.0.0.1 (rate limit plans so high that
nothing is refused, but the limiter still runs on every call, as in production), or uses a
running one: `--target HOST:PORT` (its Envoy edge) and `--api-key KEY`, with `--jobs-target
HOST:PORT` for jobs' own port. Exchanges the API key for a bearer token (gouache.client),
then runs `.tools/bin/ghz` (`bash scripts/ensure-tools.sh ghz`) with the generated
descriptor set as its protoset: `--calls` calls, `--concurrency` at once, on one HTTP/2
connection, against jobs' gRPC port and through the edge (native gRPC passes through
Envoy), alternating the two for `--rounds` rounds after `--warmup` unreported calls each.
Prints a table (calls/s, p50/p95/p99, errors; medians over rounds) and with `--json PATH`
writes every round's numbers, the ghz command line, the machine and the load average.
Bounded in count (`--calls` per round) and time (`--timeout-s` per ghz run).

With `--profile PATH` (own mesh only) py-spy samples the jobs process during the measured
rounds: collapsed stacks go to PATH (flamegraph.pl or speedscope read them) and the top
functions by samples, on the stack and on top of it, are printed and written to the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GHZ = REPO / ".tools" / "bin" / "ghz"
PY_SPY = Path(sys.executable).parent / "py-spy"
PROFILE_RATE_HZ = 250
PROFILE_TOP = 15
PROTOSET = REPO / "libs" / "gouache" / "contracts" / "descriptor.pb"
CALL = "gouache.jobs.v1.JobsService.ListModels"
PERCENTILES = (50, 95, 99)


@dataclass
class Round:
    """One ghz run against one target."""

    target: str
    address: str
    calls: int
    ok: int
    errors: dict[str, int]
    calls_per_s: float
    # Latencies in ms by percentile (50, 95, 99), and the slowest call.
    latency_ms: dict[str, float]
    slowest_ms: float
    wall_s: float


@dataclass
class Report:
    call: str
    calls: int
    concurrency: int
    connections: int
    rounds: list[Round] = field(default_factory=list)
    machine: str = ""
    cpus: int = 0
    load_average: dict[str, list[float]] = field(default_factory=dict)
    date: str = ""
    ghz_command: list[str] = field(default_factory=list)
    # py-spy's view of jobs during the rounds: samples, and the top functions
    # ("function (file:line)") by share of samples on the stack and on top of it.
    profile: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per target: median calls/s and latency percentiles over its rounds, total errors."""
        out: dict[str, dict[str, float]] = {}
        for target in dict.fromkeys(r.target for r in self.rounds):
            mine = [r for r in self.rounds if r.target == target]
            row = {"calls_per_s": statistics.median(r.calls_per_s for r in mine)}
            for p in PERCENTILES:
                row[f"p{p}_ms"] = statistics.median(r.latency_ms[f"p{p}"] for r in mine)
            row["errors"] = float(sum(sum(r.errors.values()) for r in mine))
            row["calls"] = float(sum(r.calls for r in mine))
            row["rounds"] = float(len(mine))
            out[target] = row
        return out

    def table(self) -> str:
        header = f"{'target':<8} {'rounds':>6} {'calls/s':>9} " + " ".join(
            f"{'p' + str(p) + ' ms':>9}" for p in PERCENTILES
        )
        lines = [header + f" {'errors':>7}"]
        for target, row in self.summary().items():
            lines.append(
                f"{target:<8} {int(row['rounds']):>6} {row['calls_per_s']:>9.0f} "
                + " ".join(f"{row[f'p{p}_ms']:>9.1f}" for p in PERCENTILES)
                + f" {int(row['errors']):>7}"
            )
        return "\n".join(lines)


def ghz_command(
    address: str,
    token: str,
    *,
    calls: int,
    concurrency: int,
    connections: int,
    ghz: Path = GHZ,
    protoset: Path = PROTOSET,
) -> list[str]:
    """The ghz command line for one run (the token in the metadata)."""
    return [
        str(ghz),
        "--insecure",
        "--protoset",
        str(protoset),
        "--call",
        CALL,
        "-m",
        json.dumps({"authorization": f"Bearer {token}"}),
        "-d",
        "{}",
        "-n",
        str(calls),
        "-c",
        str(concurrency),
        "--connections",
        str(connections),
        "--timeout",
        "10s",
        "--format",
        "json",
        address,
    ]


def parse_ghz(target: str, address: str, report: dict[str, Any], wall_s: float) -> Round:
    """A Round from ghz's JSON report (durations in nanoseconds)."""
    codes: dict[str, int] = dict(report.get("statusCodeDistribution") or {})
    by_p = {
        int(entry["percentage"]): entry["latency"] / 1e6
        for entry in report.get("latencyDistribution") or ()
    }
    count = int(report.get("count", 0))
    return Round(
        target=target,
        address=address,
        calls=count,
        ok=codes.get("OK", 0),
        errors={code: n for code, n in codes.items() if code != "OK"},
        calls_per_s=float(report.get("rps", 0.0)),
        latency_ms={f"p{p}": by_p.get(p, float("nan")) for p in PERCENTILES},
        slowest_ms=float(report.get("slowest", 0)) / 1e6,
        wall_s=wall_s,
    )


def run_ghz(command: Sequence[str], timeout_s: float) -> tuple[dict[str, Any], float]:
    """Runs ghz, returning its JSON report and the wall time; raises with its stderr, or
    when the run takes longer than timeout_s (ghz's own -z would stop at a duration and
    ignore -n)."""
    started = time.perf_counter()
    done = subprocess.run(
        list(command), capture_output=True, text=True, timeout=timeout_s, check=False
    )
    wall_s = time.perf_counter() - started
    if not done.stdout.strip().startswith("{"):
        raise RuntimeError(f"ghz failed (exit {done.returncode}): {done.stderr.strip()}")
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed, wall_s


def measure(
    targets: dict[str, str],
    token: str,
    *,
    calls: int,
    concurrency: int,
    connections: int = 1,
    rounds: int = 1,
    warmup: int = 100,
    timeout_s: float = 120.0,
    ghz: Path = GHZ,
) -> Report:
    """Alternates ghz runs over the targets (name -> host:port) for `rounds` rounds."""
    report = Report(
        call=CALL,
        calls=calls,
        concurrency=concurrency,
        connections=connections,
        machine=f"{platform.node()} {platform.processor() or platform.machine()}",
        cpus=os.cpu_count() or 0,
        date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    )
    report.load_average["before"] = list(os.getloadavg())

    def command(address: str, n: int) -> list[str]:
        return ghz_command(
            address,
            token,
            calls=n,
            concurrency=concurrency,
            connections=connections,
            ghz=ghz,
        )

    if warmup:
        for address in targets.values():
            run_ghz(command(address, warmup), timeout_s)
    for _ in range(rounds):
        for name, address in targets.items():
            line = command(address, calls)
            parsed, wall_s = run_ghz(line, timeout_s)
            report.rounds.append(parse_ghz(name, address, parsed, wall_s))
            if not report.ghz_command:
                report.ghz_command = [
                    '{"authorization": "Bearer <token>"}'
                    if "Bearer" in arg
                    else arg.removeprefix(f"{REPO}/")
                    for arg in line
                ]
    report.load_average["after"] = list(os.getloadavg())
    return report


def start_profile(pid: int, output: Path, py_spy: Path = PY_SPY) -> subprocess.Popen[bytes]:
    """Starts py-spy sampling pid (idle frames left out) into output as collapsed stacks."""
    return subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(PROFILE_RATE_HZ),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop_profile(process: subprocess.Popen[bytes], output: Path) -> dict[str, Any]:
    """Stops py-spy (SIGINT makes it write its file) and summarises the stacks."""
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    if not output.is_file():
        raise RuntimeError(f"py-spy wrote no profile: {stderr.decode(errors='replace')}")
    return summarise_stacks(output.read_text())


def summarise_stacks(collapsed: str, top: int = PROFILE_TOP) -> dict[str, Any]:
    """Top functions of collapsed stacks ("frame;frame;... count" lines, root first)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(frame, round(100 * n / total, 1)) for frame, n in counter.most_common(top)]

    return {"samples": total, "self_pct": shares(own), "total_pct": shares(inclusive)}


def bearer_token(edge: str, api_key: str) -> str:
    """A bearer token for api_key from AuthService.IssueToken through the edge."""
    from gouache.client import GouacheGrpc

    with GouacheGrpc(edge, api_key) as client:
        return client.tokens.token()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="calls per ghz run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--connections", type=int, default=1, help="HTTP/2 connections")
    parser.add_argument("--rounds", type=int, default=3, help="runs per target, alternated")
    parser.add_argument("--warmup", type=int, default=200, help="unreported calls per target")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="limit of one ghz run")
    parser.add_argument(
        "--only", choices=("jobs", "edge"), help="measure one target (default: both)"
    )
    parser.add_argument("--target", help="edge HOST:PORT of a running mesh (else one starts)")
    parser.add_argument("--jobs-target", help="jobs' gRPC HOST:PORT of that running mesh")
    parser.add_argument("--api-key", help="API key for --target")
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument("--ghz", type=Path, default=GHZ)
    parser.add_argument(
        "--profile", type=Path, help="py-spy the jobs process into PATH (collapsed stacks)"
    )
    args = parser.parse_args(argv)
    if not (args.ghz.is_file() and os.access(args.ghz, os.X_OK)):
        print(f"{args.ghz} is absent: bash scripts/ensure-tools.sh ghz", file=sys.stderr)
        return 2
    if not PROTOSET.is_file():
        print(f"{PROTOSET} is absent: .venv/bin/python scripts/contracts.py gen", file=sys.stderr)
        return 2
    if args.target and not args.api_key:
        parser.error("--target needs --api-key")
    if args.profile and args.target:
        parser.error("--profile samples the jobs process of the mesh this command starts")
    if args.profile and not PY_SPY.is_file():
        print(f"{PY_SPY} is absent: pip install py-spy (the dev extra)", file=sys.stderr)
        return 2
    mesh = None
    state_dir: Path | None = None
    if args.target:
        targets = {"edge": args.target}
        if args.jobs_target:
            targets = {"jobs": args.jobs_target, **targets}
        edge, key = args.target, args.api_key
    else:
        from gouache.cli.mesh import UNLIMITED_PLANS, Mesh, MeshConfig, MeshPorts

        state_dir = Path(tempfile.mkdtemp(prefix="gouache-ghz-"))
        config = MeshConfig(
            state_dir=state_dir,
            ports=MeshPorts.ephemeral(),
            models="gatys.lite0-fast",
            rate_limit_plans=UNLIMITED_PLANS,
        )
        mesh = Mesh(config)
        try:
            key = mesh.start().admin_api_key
        except BaseException:
            print(f"the mesh did not start; its logs are in {state_dir / 'logs'}", file=sys.stderr)
            raise
        edge = f"127.0.0.1:{config.ports.envoy}"
        targets = {"jobs": f"127.0.0.1:{config.ports.grpc['jobs']}", "edge": edge}
    if args.only:
        targets = {args.only: targets[args.only]}
    profiler = None
    measured = False
    if args.profile and mesh is not None:
        jobs_pid = mesh.component("jobs").pid
        assert jobs_pid is not None
        profiler = start_profile(jobs_pid, args.profile)
    try:
        report = measure(
            targets,
            bearer_token(edge, key),
            calls=args.calls,
            concurrency=args.concurrency,
            connections=args.connections,
            rounds=args.rounds,
            warmup=args.warmup,
            timeout_s=args.timeout_s,
            ghz=args.ghz,
        )
        if profiler is not None:
            report.profile = stop_profile(profiler, args.profile)
        measured = True
    finally:
        if profiler is not None and profiler.poll() is None:
            profiler.kill()
            profiler.wait()
        if mesh is not None:
            mesh.stop()
        if state_dir is not None and measured:
            shutil.rmtree(state_dir, ignore_errors=True)
        elif state_dir is not None:
            print(f"logs kept in {state_dir / 'logs'}", file=sys.stderr)
    print(
        f"{CALL}: {args.calls} calls x {args.rounds} rounds, {args.concurrency} concurrent, "
        f"{args.connections} connection(s); {report.machine}, {report.cpus} CPUs, load average "
        f"{report.load_average['before'][0]:.2f} before, {report.load_average['after'][0]:.2f} "
        "after"
    )
    print(report.table())
    if report.profile:
        print(f"jobs under load, py-spy: {report.profile['samples']} samples")
        for title, column in (("on top of the stack", "self_pct"), ("on the stack", "total_pct")):
            print(f"  {title}:")
            for frame, pct in report.profile[column]:
                print(f"    {pct:5.1f} %  {frame}")
    if args.json:
        args.json.write_text(
            json.dumps({**asdict(report), "summary": report.summary()}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
