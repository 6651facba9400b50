"""The edge renderer and its CLI: routes for native gRPC, TLS options, readable errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gouache.edge import (
    GRPC_SERVICES,
    REFLECTION_SERVICES,
    REFLECTION_UPSTREAM,
    EdgeConfig,
    Upstream,
    UpstreamTls,
    render,
)
from gouache.edge.__main__ import main
from gouache.edge.envoy_json import BUFFER, TRANSCODER
from gouache.edge.studio import default_studio_dir

UPSTREAMS = {
    "auth": Upstream("auth", 50051),
    "storage": Upstream("storage", 50052),
    "jobs": Upstream("10.0.0.3", 50053),
    "feedback": Upstream("feedback", 50056),
    "storage_http": Upstream("storage", 8081),
}
CLI_UPSTREAMS = [
    "--auth=auth:50051",
    "--storage=storage:50052",
    "--jobs=10.0.0.3:50053",
    "--feedback=feedback:50056",
    "--storage-http=storage:8081",
]


def _config(**overrides: Any) -> EdgeConfig:
    settings: dict[str, Any] = {"listen_port": 8080, "admin_port": 9901, **UPSTREAMS}
    return EdgeConfig(**{**settings, **overrides})


def _chain(bootstrap: dict[str, Any]) -> dict[str, Any]:
    chain: dict[str, Any] = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]
    return chain


def _routes(bootstrap: dict[str, Any]) -> list[dict[str, Any]]:
    manager = _chain(bootstrap)["filters"][0]["typed_config"]
    routes: list[dict[str, Any]] = manager["route_config"]["virtual_hosts"][0]["routes"]
    return routes


def _clusters(bootstrap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}


def test_every_route_a_native_grpc_call_can_take_turns_the_json_buffer_off() -> None:
    grpc_routes = [
        route
        for route in _routes(render(_config()))
        if route["match"]
        .get("path", route["match"].get("prefix", ""))
        .startswith(("/gouache.", "/grpc."))
        or route["name"] == "no-grpc-route"
    ]

    assert len(grpc_routes) >= len(GRPC_SERVICES) + len(REFLECTION_SERVICES) + 1
    for route in grpc_routes:
        assert route["typed_per_filter_config"][BUFFER]["disabled"] is True, route["name"]


def test_reflection_goes_to_the_upstream_that_describes_the_public_api() -> None:
    routes = {route["name"]: route for route in _routes(render(_config()))}

    for service in REFLECTION_SERVICES:
        assert routes[service]["match"] == {"prefix": f"/{service}/"}
        assert routes[service]["route"]["cluster"] == REFLECTION_UPSTREAM


def test_internal_services_have_no_cluster() -> None:
    assert set(_clusters(render(_config()))) == {*GRPC_SERVICES, "storage_http"}


def test_plaintext_by_default_and_tls_with_alpn_for_both_protocols(tmp_path: Path) -> None:
    assert "transport_socket" not in _chain(render(_config()))

    tls = _chain(render(_config(tls_cert=tmp_path / "c.pem", tls_key=tmp_path / "k.pem")))
    context = tls["transport_socket"]["typed_config"]["common_tls_context"]

    assert context["alpn_protocols"] == ["h2", "http/1.1"]
    assert context["tls_certificates"] == [
        {
            "certificate_chain": {"filename": str(tmp_path / "c.pem")},
            "private_key": {"filename": str(tmp_path / "k.pem")},
        }
    ]


def test_upstream_mtls_on_grpc_clusters_checks_the_name_dialled(tmp_path: Path) -> None:
    files = UpstreamTls(ca=tmp_path / "ca.pem", cert=tmp_path / "c.pem", key=tmp_path / "k.pem")
    clusters = _clusters(render(_config(upstream_tls=files)))

    auth = clusters["auth"]["transport_socket"]["typed_config"]
    jobs = clusters["jobs"]["transport_socket"]["typed_config"]
    validation = auth["common_tls_context"]["validation_context"]
    assert validation["trusted_ca"] == {"filename": str(tmp_path / "ca.pem")}
    assert validation["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "auth"}}
    ]
    assert auth["sni"] == "auth"
    assert auth["common_tls_context"]["alpn_protocols"] == ["h2"]
    assert jobs["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "IP_ADDRESS", "matcher": {"exact": "10.0.0.3"}}
    ]
    assert "sni" not in jobs
    assert "transport_socket" not in clusters["storage_http"]


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both tls_cert and tls_key"):
        _config(tls_cert=tmp_path / "c.pem")


@pytest.mark.parametrize(
    ("text", "upstream"),
    [
        ("auth:50051", Upstream("auth", 50051)),
        ("10.0.0.1:1", Upstream("10.0.0.1", 1)),
        ("[::1]:8080", Upstream("::1", 8080)),
    ],
)
def test_upstream_parses_host_and_port(text: str, upstream: Upstream) -> None:
    assert Upstream.parse(text) == upstream
    assert Upstream.parse(str(upstream)) == upstream


@pytest.mark.parametrize("text", ["auth", ":50051", "auth:", "auth:http", "auth:0", "auth:70000"])
def test_upstream_refuses_what_is_not_host_and_port(text: str) -> None:
    with pytest.raises(ValueError, match=r"HOST:PORT|port"):
        Upstream.parse(text)


def test_cli_renders_what_render_renders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "envoy" / "envoy.json"
    ca, cert, key = (tmp_path / name for name in ("ca.pem", "c.pem", "k.pem"))
    args = [
        "render",
        f"--out={out}",
        "--listen-host=0.0.0.0",
        "--listen-port=8443",
        "--admin-port=9902",
        *CLI_UPSTREAMS,
        "--max-upload-bytes=1000",
        f"--tls-cert={cert}",
        f"--tls-key={key}",
        f"--upstream-ca={ca}",
        f"--upstream-cert={cert}",
        f"--upstream-key={key}",
    ]

    assert main(args) == 0

    expected = _config(
        listen_host="0.0.0.0",
        listen_port=8443,
        admin_port=9902,
        max_upload_bytes=1000,
        tls_cert=cert,
        tls_key=key,
        upstream_tls=UpstreamTls(ca=ca, cert=cert, key=key),
        studio_dir=default_studio_dir(),
    )
    assert json.loads(out.read_text()) == render(expected)
    assert str(out) in capsys.readouterr().out


def test_cli_defaults_listen_and_admin_on_loopback(tmp_path: Path) -> None:
    out = tmp_path / "envoy.json"
    assert main(["render", f"--out={out}", *CLI_UPSTREAMS]) == 0
    assert json.loads(out.read_text()) == render(_config(studio_dir=default_studio_dir()))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--auth=auth"], "argument --auth: 'auth' is not HOST:PORT"),
        (["--jobs=jobs:port"], "argument --jobs: 'jobs:port': the port must be a number"),
        (["--listen-port=0"], "argument --listen-port: '0' is not a port"),
        (["--tls-cert=c.pem"], "--tls-cert and --tls-key go together"),
        (["--upstream-ca=ca.pem"], "--upstream-ca, --upstream-cert and --upstream-key go"),
    ],
)
def test_cli_errors_are_one_readable_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    args = ["render", f"--out={tmp_path / 'e.json'}", *CLI_UPSTREAMS, *extra]
    try:
        code = main(args)
    except SystemExit as exited:  # argparse's own errors
        code = exited.code

    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "e.json").exists()


def test_server_streams_with_a_rest_mapping_are_event_streams_with_stream_timeouts() -> None:
    bootstrap = render(_config(request_timeout_s=30, stream_timeout_s=7200))
    manager = _chain(bootstrap)["filters"][0]["typed_config"]
    transcoder = next(f for f in manager["http_filters"] if f["name"] == TRANSCODER)
    routes = {route["name"]: route for route in _routes(bootstrap)}
    watch = "/gouache.jobs.v1.JobsService/WatchJob"

    assert transcoder["typed_config"]["print_options"]["stream_sse_style_delimited"] is True
    events = routes[f"jobs{watch}:events"]
    assert events["match"] == {
        "path": watch,
        "headers": [{"name": "x-envoy-original-path", "present_match": True}],
    }
    assert events["route"]["timeout"] == events["route"]["idle_timeout"] == "7200s"
    added = {h["header"]["key"]: h["header"]["value"] for h in events["response_headers_to_add"]}
    assert added == {"cache-control": "no-cache", "x-accel-buffering": "no"}
    # Native gRPC takes the plain route; a stream without a REST mapping gets no SSE route.
    assert "response_headers_to_add" not in routes[f"jobs{watch}"]
    assert "storage/gouache.storage.v1.StorageService/DownloadImage:events" not in routes
    assert list(routes).index(f"jobs{watch}:events") < list(routes).index(f"jobs{watch}")
