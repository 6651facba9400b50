"""The edge's routes: public gRPC services (native and transcoded), reflection, file transfers,
and a prompt answer for everything else."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from gouache.edge.envoy_json import BUFFER, TRANSCODER, disabled, seconds
from gouache.edge.methods import method_not_allowed_routes
from gouache.edge.oauth2 import token_routes
from gouache.edge.openapi import packaged_openapi
from gouache.edge.openapi.route import document_route, largest_direct_response
from gouache.edge.studio import max_direct_body_bytes, studio_routes
from gouache.edge.surface import (
    FILES_PREFIX,
    GRPC_SERVICES,
    HEALTH_SERVICE,
    REFLECTION_SERVICES,
    REFLECTION_UPSTREAM,
    STORAGE_HTTP_CLUSTER,
)

if TYPE_CHECKING:
    from gouache.edge.config import EdgeConfig

_INT64_MAX = 2**63 - 1
# What a native gRPC caller reads as grpc-message (status UNIMPLEMENTED, from Envoy's 404).
NO_GRPC_SERVICE = "no public gRPC service at this path; the edge serves " + ", ".join(
    GRPC_SERVICES.values()
)


def route_config(
    config: EdgeConfig, descriptor: descriptor_pb2.FileDescriptorSet
) -> dict[str, Any]:
    """REST paths match nothing before transcoding; the transcoder turns them into gRPC paths
    and clears the route cache, so only the gRPC routes and the file routes are reachable.

    Every route a native gRPC request can take turns the JSON buffer off: the buffer waits for
    the end of the request body, which a client or bidi stream sends only when it is done."""
    routes = [*token_routes(config, descriptor), *_file_routes(config)]
    for name, service in GRPC_SERVICES.items():
        routes += [
            _event_stream_route(name, path, config.stream_timeout_s)
            for path in _event_streams(descriptor, service)
        ]
        routes += [
            _grpc_route(name, path, config.stream_timeout_s, exact=True)
            for path in _streaming_methods(descriptor, service)
        ]
        routes.append(_grpc_route(name, f"/{service}/", config.request_timeout_s, exact=False))
    # A reflection stream stays open while a tool like grpcurl works, and a health Watch
    # while a balancer watches: long, but idle-bounded.
    routes += [
        _grpc_route(
            REFLECTION_UPSTREAM,
            f"/{service}/",
            config.stream_timeout_s,
            exact=False,
            idle_timeout_s=config.request_timeout_s,
            name=service,
        )
        for service in (*REFLECTION_SERVICES, HEALTH_SERVICE)
    ]
    routes += [
        _no_grpc_route(),
        document_route(packaged_openapi().read_text()),
        *method_not_allowed_routes(descriptor),
        *studio_routes(config.studio_dir),
        _no_route(),
    ]
    return {
        "name": "edge",
        "virtual_hosts": [{"name": "edge", "domains": ["*"], "routes": routes}],
        "max_direct_response_body_size_bytes": max(
            max_direct_body_bytes(config.studio_dir), largest_direct_response(routes)
        ),
    }


def _streaming_methods(descriptor: descriptor_pb2.FileDescriptorSet, service: str) -> list[str]:
    """gRPC paths of service's streaming methods: they get the long stream timeout."""
    return [
        f"/{service}/{method.name}"
        for file in descriptor.file
        for candidate in file.service
        if f"{file.package}.{candidate.name}" == service
        for method in candidate.method
        if method.client_streaming or method.server_streaming
    ]


def _event_streams(descriptor: descriptor_pb2.FileDescriptorSet, service: str) -> list[str]:
    """gRPC paths of service's server streams that have a REST mapping: the transcoder answers
    them as server-sent events (stream_sse_style_delimited)."""
    return [
        f"/{service}/{method.name}"
        for file in descriptor.file
        for candidate in file.service
        if f"{file.package}.{candidate.name}" == service
        for method in candidate.method
        if method.server_streaming and method.options.HasExtension(annotations_pb2.http)
    ]


def _event_stream_route(cluster: str, path: str, timeout_s: float) -> dict[str, Any]:
    """A transcoded server stream (the transcoder has set x-envoy-original-path by the time the
    route is chosen) is an event stream: the long stream timeouts of its gRPC route, and
    headers that keep caches and buffering proxies (nginx honours x-accel-buffering) from
    holding its events back. Native gRPC calls to the same path take the next route."""
    route = _grpc_route(cluster, path, timeout_s, exact=True, name=f"{cluster}{path}:events")
    route["match"]["headers"] = [{"name": "x-envoy-original-path", "present_match": True}]
    route["response_headers_to_add"] = [
        {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        for key, value in (("cache-control", "no-cache"), ("x-accel-buffering", "no"))
    ]
    return route


def _file_routes(config: EdgeConfig) -> list[dict[str, Any]]:
    """Signed uploads (PUT) and downloads (GET) stream to storage's plain HTTP server.

    Envoy streams the body instead of buffering it, so the upload limit is enforced on the
    declared Content-Length, and a PUT must declare one."""
    too_large = {
        "name": "files-too-large",
        "match": {
            "prefix": FILES_PREFIX,
            "headers": [
                {
                    "name": "content-length",
                    "range_match": {"start": config.max_upload_bytes + 1, "end": _INT64_MAX},
                }
            ],
        },
        "direct_response": {
            "status": 413,
            "body": {"inline_string": f"upload exceeds {config.max_upload_bytes} bytes"},
        },
        "typed_per_filter_config": disabled(TRANSCODER, BUFFER),
    }
    unsized_put = {
        "name": "files-length-required",
        "match": {
            "prefix": FILES_PREFIX,
            "headers": [
                {"name": ":method", "string_match": {"exact": "PUT"}},
                {"name": "content-length", "present_match": False},
            ],
        },
        "direct_response": {
            "status": 411,
            "body": {"inline_string": "an upload must declare its Content-Length"},
        },
        "typed_per_filter_config": disabled(TRANSCODER, BUFFER),
    }
    transfer = {
        "name": "files",
        "match": {"prefix": FILES_PREFIX},
        "route": {
            "cluster": STORAGE_HTTP_CLUSTER,
            "timeout": seconds(config.stream_timeout_s),
            "idle_timeout": seconds(config.request_timeout_s),
        },
        "typed_per_filter_config": disabled(TRANSCODER, BUFFER),
    }
    return [too_large, unsized_put, transfer]


def _grpc_route(
    cluster: str,
    path: str,
    timeout_s: float,
    *,
    exact: bool,
    idle_timeout_s: float | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """A route for gRPC paths: transcoded REST requests, and native gRPC, which streams."""
    action: dict[str, Any] = {"cluster": cluster, "timeout": seconds(timeout_s)}
    if exact or idle_timeout_s is not None:
        action["idle_timeout"] = seconds(idle_timeout_s or timeout_s)
    return {
        "name": name or (f"{cluster}{path}" if exact else cluster),
        "match": {"path": path} if exact else {"prefix": path},
        "route": action,
        "typed_per_filter_config": disabled(BUFFER),
    }


def _no_grpc_route() -> dict[str, Any]:
    """Native gRPC to any other path (tiling, inference, unknown services) is answered at
    once, before its request stream ends: Envoy sends a 404 to a gRPC caller as grpc-status
    UNIMPLEMENTED. REST requests never match here: their content type is not gRPC until the
    transcoder has chosen a public route."""
    return {
        "name": "no-grpc-route",
        "match": {
            "prefix": "/",
            "headers": [{"name": "content-type", "string_match": {"prefix": "application/grpc"}}],
        },
        "direct_response": {"status": 404, "body": {"inline_string": NO_GRPC_SERVICE}},
        "typed_per_filter_config": disabled(TRANSCODER, BUFFER),
    }


def _no_route() -> dict[str, Any]:
    return {
        "name": "no-route",
        "match": {"prefix": "/"},
        "direct_response": {"status": 404, "body": {"inline_string": "no route for this path"}},
    }
