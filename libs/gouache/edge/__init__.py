"""The Envoy edge: one renderer of its config (REST transcoding and native gRPC on one port,
TLS options) for `gouache up` and the Helm chart, and the Envoy process."""

from gouache.edge.config import (
    FILES_PREFIX,
    GRPC_SERVICES,
    MIB,
    REFLECTION_SERVICES,
    REFLECTION_UPSTREAM,
    STORAGE_HTTP_CLUSTER,
    EdgeConfig,
    Upstream,
    UpstreamTls,
    packaged_descriptor,
    render,
    write,
)
from gouache.edge.process import EnvoyProcess, find_envoy_binary

__all__ = [
    "FILES_PREFIX",
    "GRPC_SERVICES",
    "MIB",
    "REFLECTION_SERVICES",
    "REFLECTION_UPSTREAM",
    "STORAGE_HTTP_CLUSTER",
    "EdgeConfig",
    "EnvoyProcess",
    "Upstream",
    "UpstreamTls",
    "find_envoy_binary",
    "packaged_descriptor",
    "render",
    "write",
]
