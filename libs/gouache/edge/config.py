"""The Envoy edge's configuration: what varies between edges, and the one renderer of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor
from google.rpc import error_details_pb2, status_pb2

from gouache.edge.clusters import clusters, overload_manager
from gouache.edge.envoy_json import address
from gouache.edge.listener import listener
from gouache.edge.surface import (
    FILES_PREFIX,
    GRPC_SERVICES,
    MIB,
    REFLECTION_SERVICES,
    REFLECTION_UPSTREAM,
    STORAGE_HTTP_CLUSTER,
)

__all__ = [
    "FILES_PREFIX",
    "GRPC_SERVICES",
    "MIB",
    "REFLECTION_SERVICES",
    "REFLECTION_UPSTREAM",
    "STORAGE_HTTP_CLUSTER",
    "EdgeConfig",
    "Upstream",
    "UpstreamTls",
    "packaged_descriptor",
    "render",
    "write",
]


def packaged_descriptor() -> Path:
    """The descriptor set generated from protos/, shipped inside gouache.contracts."""
    return Path(str(resources.files("gouache.contracts") / "descriptor.pb"))


@dataclass(frozen=True)
class Upstream:
    """Where one upstream listens."""

    host: str
    port: int

    @classmethod
    def parse(cls, value: str) -> Upstream:
        """HOST:PORT (an IPv6 host in brackets), or ValueError saying what is wrong."""
        host, sep, port = value.strip().rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host:
            raise ValueError(f"{value!r} is not HOST:PORT")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r}: the port must be a number from 1 to 65535")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class UpstreamTls:
    """mTLS towards the gRPC upstreams: the CA that signed their certificates, and the client
    certificate and key the edge presents to them."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True, kw_only=True)
class EdgeConfig:
    """Everything that varies between one Envoy edge and another.

    With tls_cert and tls_key the public listener speaks TLS only (ALPN h2 and http/1.1:
    REST and native gRPC on one port); with upstream_tls the gRPC clusters speak mTLS."""

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
    tls_cert: Path | None = None
    tls_key: Path | None = None
    upstream_tls: UpstreamTls | None = None
    # A built gouache studio (gouache.edge.studio.default_studio_dir) to serve at /; None
    # serves a page saying how to build it.
    studio_dir: Path | None = None

    def __post_init__(self) -> None:
        limits = (self.max_json_body_bytes, self.max_json_response_bytes, self.max_upload_bytes)
        if min(limits) <= 0:
            raise ValueError("body limits must be positive")
        if min(self.request_timeout_s, self.stream_timeout_s) <= 0:
            raise ValueError("timeouts must be positive")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS at the edge needs both tls_cert and tls_key")

    @property
    def tls(self) -> bool:
        """Whether the public listener speaks TLS."""
        return self.tls_cert is not None

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
    descriptor = descriptor_set(config.descriptor_path)
    return {
        "admin": {"address": address(config.admin_host, config.admin_port)},
        "static_resources": {
            "listeners": [listener(config, descriptor)],
            "clusters": clusters(config),
        },
        "overload_manager": overload_manager(),
    }


def write(config: EdgeConfig, path: Path) -> Path:
    """Render config into path (JSON, which Envoy reads as YAML too) and return path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(render(config), indent=2) + "\n")
    return path


def descriptor_set(path: Path) -> descriptor_pb2.FileDescriptorSet:
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
