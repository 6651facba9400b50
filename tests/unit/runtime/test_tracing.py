"""Which span exporters the OTEL_* variables choose, and the resource a service reports."""

from __future__ import annotations

import pytest

from gouache.runtime.tracing import TracingConfigError, service_resource, trace_exporter_names

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}


@pytest.mark.parametrize(
    ("environ", "console", "expected"),
    [
        ({}, False, []),
        ({}, True, ["console"]),
        (ENDPOINT, False, ["otlp"]),
        (ENDPOINT, True, ["otlp", "console"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, False, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False, []),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, False, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "otlp_proto_grpc"}, False, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, False, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "OTLP, console"}, False, ["otlp", "console"]),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False, []),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, True, ["console"]),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "console"}, False, ["console"]),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, False, ["otlp"]),
    ],
)
def test_exporters_follow_the_standard_variables(
    environ: dict[str, str], console: bool, expected: list[str]
) -> None:
    assert trace_exporter_names(environ, console=console) == expected


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "'zipkin'"),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "'http/protobuf'"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
            "'http/json'",
        ),
    ],
)
def test_what_this_build_cannot_export_is_refused_by_name(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(TracingConfigError, match=named):
        trace_exporter_names(environ, console=False)


def test_an_http_protocol_matters_only_when_otlp_runs() -> None:
    environ = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    assert trace_exporter_names(environ, console=True) == ["console"]


def test_the_service_is_named_after_gouache_unless_the_environment_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging")
    resource = service_resource("tiling")
    assert resource.attributes["service.name"] == "gouache-tiling"
    assert resource.attributes["deployment.environment.name"] == "staging"

    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes")
    assert service_resource("tiling").attributes["service.name"] == "from-attributes"

    monkeypatch.setenv("OTEL_SERVICE_NAME", "tiling-eu")
    assert service_resource("tiling").attributes["service.name"] == "tiling-eu"
