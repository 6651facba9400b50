"""The public listener: HTTP connection manager, access log, local replies and HTTP filters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pb2

from gouache.edge.envoy_json import BUFFER, TRANSCODER, address, typed
from gouache.edge.headers import grpc_safe_headers
from gouache.edge.oauth2 import status_filter as oauth2_status
from gouache.edge.routes import route_config
from gouache.edge.status import http_status_filter
from gouache.edge.studio import compressor as studio_compressor
from gouache.edge.surface import FILES_PREFIX, GRPC_SERVICES
from gouache.edge.tls import downstream_tls
from gouache.edge.transcoder import transcoder_config

if TYPE_CHECKING:
    from gouache.edge.config import EdgeConfig

# google.rpc.Code for the HTTP statuses Envoy answers by itself, so that every error body
# the edge sends has the same shape as a transcoded gRPC error: {code, message, details}.
_LOCAL_REPLY_CODES: Mapping[int, int] = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 5,  # NOT_FOUND
    405: 12,  # UNIMPLEMENTED, as storage's file server answers a method it does not take
    408: 4,  # DEADLINE_EXCEEDED
    411: 3,  # INVALID_ARGUMENT
    413: 8,  # RESOURCE_EXHAUSTED, as a gRPC server answers an oversized message
    429: 8,  # RESOURCE_EXHAUSTED
    500: 13,  # INTERNAL
    501: 12,  # UNIMPLEMENTED
    502: 14,  # UNAVAILABLE
    503: 14,  # UNAVAILABLE
    504: 4,  # DEADLINE_EXCEEDED
}
_UNKNOWN_CODE = 2


def listener(config: EdgeConfig, descriptor: descriptor_pb2.FileDescriptorSet) -> dict[str, Any]:
    """One port for REST (transcoded) and native gRPC: h2c and HTTP/1.1 in the clear, or h2
    and http/1.1 by ALPN under TLS; codec AUTO tells them apart."""
    manager = typed(
        "extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix="edge",
        codec_type="AUTO",
        use_remote_address=True,
        normalize_path=True,
        merge_slashes=True,
        common_http_protocol_options={"headers_with_underscores_action": "DROP_HEADER"},
        generate_request_id=True,
        always_set_request_id_in_response=True,
        access_log=[_access_log()],
        local_reply_config=_local_reply_config(config),
        route_config=route_config(config, descriptor),
        http_filters=[
            grpc_safe_headers(),
            studio_compressor(),
            _json_body_limit(config),
            oauth2_status(),
            http_status_filter(),
            _transcoder(config, descriptor),
            _router(),
        ],
    )
    chain: dict[str, Any] = {
        "filters": [
            {"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}
        ]
    }
    if config.tls_cert is not None and config.tls_key is not None:
        chain["transport_socket"] = downstream_tls(config.tls_cert, config.tls_key)
    return {
        "name": "edge",
        "address": address(config.listen_host, config.listen_port),
        "filter_chains": [chain],
    }


def _access_log() -> dict[str, Any]:
    """One JSON line per request on stdout; the query string is left out (signed URLs)."""
    fields = {
        "time": "%START_TIME%",
        "request_id": "%REQ(X-REQUEST-ID)%",
        "method": "%REQ(X-ENVOY-ORIGINAL-METHOD?:METHOD)%",
        "path": "%PATH(NQ:ORIG_OR_PATH)%",
        "grpc_path": "%PATH(NQ:PATH)%",
        "protocol": "%PROTOCOL%",
        "status": "%RESPONSE_CODE%",
        "grpc_status": "%GRPC_STATUS_NUMBER%",
        "flags": "%RESPONSE_FLAGS%",
        "details": "%RESPONSE_CODE_DETAILS%",
        "bytes_in": "%BYTES_RECEIVED%",
        "bytes_out": "%BYTES_SENT%",
        "duration_ms": "%DURATION%",
        "upstream": "%UPSTREAM_CLUSTER%",
        "upstream_ms": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
        "client": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
        "user_agent": "%REQ(USER-AGENT)%",
    }
    return {
        "name": "envoy.access_loggers.stdout",
        "typed_config": typed(
            "extensions.access_loggers.stream.v3.StdoutAccessLog",
            log_format={"json_format": fields},
        ),
    }


def _local_reply_config(config: EdgeConfig) -> dict[str, Any]:
    """Envoy's own replies as {code, message, details} JSON, like a transcoded gRPC error.

    Native gRPC callers are left alone: Envoy turns their local replies into grpc-status and
    grpc-message. A transcoded request also carries content-type application/grpc by the time
    Envoy answers, so it is told apart by the x-envoy-original-path the transcoder adds."""
    native_grpc = {
        "filter": {
            "and_filter": {
                "filters": [
                    _header_filter(
                        {"name": "content-type", "string_match": {"prefix": "application/grpc"}}
                    ),
                    _header_filter({"name": "x-envoy-original-path", "present_match": False}),
                ]
            }
        },
        "body_format_override": {"text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"}},
    }
    json_too_large = {
        "filter": {
            "and_filter": {
                "filters": [
                    _status_filter(413),
                    _header_filter(
                        {
                            "name": ":path",
                            "string_match": {"prefix": FILES_PREFIX},
                            "invert_match": True,
                        }
                    ),
                ]
            }
        },
        "body_format_override": _error_body(
            _LOCAL_REPLY_CODES[413],
            f"request body exceeds {config.max_json_body_bytes} bytes",
        ),
    }
    by_status = [
        {
            "filter": _status_filter(status),
            "body_format_override": _error_body(code, _local_reply_message(status)),
        }
        for status, code in _LOCAL_REPLY_CODES.items()
    ]
    # Any other error gets the same shape; a 200 (the studio's files) is left as it is.
    other_error = {
        "filter": _status_filter(400, op="GE"),
        "body_format_override": _error_body(_UNKNOWN_CODE, "%LOCAL_REPLY_BODY%"),
    }
    return {"mappers": [native_grpc, json_too_large, *by_status, other_error]}


def _status_filter(status: int, op: str = "EQ") -> dict[str, Any]:
    key = f"edge.local_reply.{status}" if op == "EQ" else f"edge.local_reply.{op.lower()}_{status}"
    value = {"default_value": status, "runtime_key": key}
    return {"status_code_filter": {"comparison": {"op": op, "value": value}}}


def _header_filter(matcher: dict[str, Any]) -> dict[str, Any]:
    return {"header_filter": {"header": matcher}}


def _local_reply_message(status: int) -> str:
    """Every 404 Envoy makes itself means the path maps to no RPC and no route."""
    return "no route for %PATH(NQ:ORIG_OR_PATH)%" if status == 404 else "%LOCAL_REPLY_BODY%"


def _error_body(code: int, message: str) -> dict[str, Any]:
    return {"json_format": {"code": code, "message": message, "details": []}}


def _transcoder(config: EdgeConfig, descriptor: descriptor_pb2.FileDescriptorSet) -> dict[str, Any]:
    return {
        "name": TRANSCODER,
        "typed_config": transcoder_config(config, descriptor, list(GRPC_SERVICES.values())),
    }


def _json_body_limit(config: EdgeConfig) -> dict[str, Any]:
    """Buffers a REST request whole, answering 413 past max_json_body_bytes.

    The transcoder converts a JSON body as it streams, so its own max_request_body_size
    bounds only what it holds at once, not the body. Native gRPC and file routes opt out:
    they stream (see routes.py; every route a native gRPC request can take turns it off)."""
    return {
        "name": BUFFER,
        "typed_config": typed(
            "extensions.filters.http.buffer.v3.Buffer",
            max_request_bytes=config.max_json_body_bytes,
        ),
    }


def _router() -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.router",
        "typed_config": typed("extensions.filters.http.router.v3.Router"),
    }
