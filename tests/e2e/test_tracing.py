"""One job, one trace: REST through Envoy, jobs, the outbox, NATS, tiling, inference, storage.

The mesh runs as separate processes, each exporting its spans over OTLP/gRPC (configured
only by the standard OTEL_* variables) to a receiver in this test.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gouache.cli.mesh import UNLIMITED_PLANS, Mesh, MeshConfig, MeshPorts
from gouache.client import GouacheClient, GouacheGrpc
from gouache.contracts.jobs.v1 import jobs_pb2
from tests.e2e.images import small
from tests.fixtures.otlp import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.slow

SPAN_KIND_SERVER = 2
SPAN_KIND_PRODUCER = 4
SPAN_KIND_CONSUMER = 5
CREATE_JOB = "/gouache.jobs.v1.JobsService/CreateJob"
# What one job crosses: jobs takes the request and relays JobCreated, tiling consumes it and
# calls storage and inference, jobs consumes the outcome, feedback consumes jobs.succeeded.
SERVICES = {"gouache-jobs", "gouache-tiling", "gouache-inference", "gouache-storage"}
EXPORT_WITHIN_S = 30.0


@pytest.fixture(scope="module")
def traced_mesh(
    tmp_path_factory: pytest.TempPathFactory, otlp_receiver: OtlpReceiver
) -> Iterator[Mesh]:
    state: Path = tmp_path_factory.mktemp("traced-mesh")
    config = MeshConfig(
        state_dir=state,
        ports=MeshPorts.ephemeral(),
        models="gatys.lite0-fast",
        extra_env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
            # Export within 100 ms of a span ending instead of 5 s.
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        },
        rate_limit_plans=UNLIMITED_PLANS,
    )
    running = Mesh(config)
    try:
        running.start()
    except BaseException:
        for log in sorted((state / "logs").glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise
    yield running
    running.stop()


def _run_job(
    mesh: Mesh, client: GouacheClient, content: str, style: str, headers: dict[str, str]
) -> str:
    """POSTs a job over REST with these extra headers, waits for success; its id."""
    response = httpx.post(
        f"{mesh.config.public_url}/v1/jobs",
        json={
            "content_url": content,
            "style_urls": [style],
            "model_version": "gatys-fast",
            "params": {"seed": 1},
            # Both jobs are the same request: each must cross the mesh, not be a cache hit.
            "no_cache": True,
        },
        headers={"authorization": f"Bearer {client.token()}", **headers},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    job_id = str(response.json()["job_id"])
    result = client.wait(job_id, timeout_s=240)
    assert result.status == "succeeded", result.raw
    return job_id


def _job_trace(receiver: OtlpReceiver, job_id: str) -> tuple[str, list[ReceivedSpan]]:
    """The trace id of the job (its tiling delivery names it) and that trace's spans, once
    every service has exported its part, feedback has consumed the outcome and the publish
    of every consumed message is in."""

    def trace_id(spans: list[ReceivedSpan]) -> str | None:
        for span in spans:
            if span.service == "gouache-tiling" and span.attributes.get("gouache.job.id") == job_id:
                return span.trace_id
        return None

    def complete(spans: list[ReceivedSpan]) -> bool:
        found = trace_id(spans)
        if found is None:
            return False
        mine = [span for span in spans if span.trace_id == found]
        # Each process exports on its own schedule: a consumer's span can arrive before the
        # span of the publish it continues, so wait for every publish a consumer names.
        published = {
            span.attributes.get("messaging.message.id")
            for span in mine
            if span.kind == SPAN_KIND_PRODUCER
        }
        consumed = {
            span.attributes.get("messaging.message.id")
            for span in mine
            if span.kind == SPAN_KIND_CONSUMER
        }
        return (
            {span.service for span in mine} >= SERVICES
            and any(
                span.service == "gouache-feedback" and span.kind == SPAN_KIND_CONSUMER
                for span in mine
            )
            and consumed <= published
        )

    spans = receiver.wait_for(
        complete, within=EXPORT_WITHIN_S, what=f"every service's spans of job {job_id}"
    )
    found = trace_id(spans)
    assert found is not None
    return found, [span for span in spans if span.trace_id == found]


def _assert_consumers_continue_producers(spans: list[ReceivedSpan]) -> None:
    """Every consumer span of the trace is a child of the publish span of its message."""
    producers = {
        span.attributes["messaging.message.id"]: span
        for span in spans
        if span.kind == SPAN_KIND_PRODUCER
    }
    consumers = [span for span in spans if span.kind == SPAN_KIND_CONSUMER]
    subjects = {span.attributes["messaging.destination.name"] for span in consumers}
    # The job's JobCreated goes out on its priority class (an admin's export: free tier).
    assert {
        "gouache.jobs.created.export.free",
        "gouache.execution.succeeded",
        "gouache.jobs.succeeded",
    } <= subjects
    for consumer in consumers:
        producer = producers[consumer.attributes["messaging.message.id"]]
        assert consumer.parent_span_id == producer.span_id, consumer
        assert consumer.attributes["messaging.system"] == "nats"
        assert consumer.attributes["messaging.nats.stream"]
        assert consumer.attributes["messaging.consumer.group.name"]
        assert consumer.attributes["messaging.nats.message.delivery_count"] >= 1


def test_one_job_is_one_trace_across_the_mesh_and_continues_the_callers(
    traced_mesh: Mesh, otlp_receiver: OtlpReceiver
) -> None:
    assert traced_mesh.credentials is not None
    with GouacheClient(
        traced_mesh.config.public_url, traced_mesh.credentials.admin_api_key
    ) as client:
        content = client.upload(small("chelsea", 48), filename="cat.png")
        style = client.upload(small("rocket", 48), filename="rocket.png", kind="style")

        first_job = _run_job(traced_mesh, client, content, style, {})
        first_trace, first_spans = _job_trace(otlp_receiver, first_job)

        # A caller with its own trace: Envoy passes traceparent on, jobs continues it.
        caller_trace, caller_span = secrets.token_hex(16), secrets.token_hex(8)
        traceparent = f"00-{caller_trace}-{caller_span}-01"
        second_job = _run_job(traced_mesh, client, content, style, {"traceparent": traceparent})
        second_trace, second_spans = _job_trace(otlp_receiver, second_job)

    # The first job's trace starts at the REST call: jobs' CreateJob is its root.
    (create,) = [span for span in first_spans if span.name == CREATE_JOB]
    assert (create.service, create.kind, create.parent_span_id) == (
        "gouache-jobs",
        SPAN_KIND_SERVER,
        "",
    )
    _assert_consumers_continue_producers(first_spans)

    assert second_trace == caller_trace != first_trace
    (create,) = [span for span in second_spans if span.name == CREATE_JOB]
    assert (create.kind, create.parent_span_id) == (SPAN_KIND_SERVER, caller_span)
    _assert_consumers_continue_producers(second_spans)
    assert not {span.span_id for span in first_spans} & {span.span_id for span in second_spans}


def test_a_native_grpc_callers_traceparent_crosses_envoy(
    traced_mesh: Mesh, otlp_receiver: OtlpReceiver
) -> None:
    assert traced_mesh.credentials is not None
    caller_trace, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    metadata = (("traceparent", f"00-{caller_trace}-{caller_span}-01"),)
    target = f"127.0.0.1:{traced_mesh.config.ports.envoy}"
    with GouacheGrpc(target, traced_mesh.credentials.admin_api_key) as gouache:
        gouache.jobs.ListModels(jobs_pb2.ListModelsRequest(), timeout=10, metadata=metadata)

    def served(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [
            span
            for span in spans
            if span.trace_id == caller_trace and span.name.endswith("JobsService/ListModels")
        ]

    spans = otlp_receiver.wait_for(
        lambda spans: bool(served(spans)), within=EXPORT_WITHIN_S, what="jobs' ListModels span"
    )
    (span,) = served(spans)
    assert (span.service, span.kind, span.parent_span_id) == (
        "gouache-jobs",
        SPAN_KIND_SERVER,
        caller_span,
    )
