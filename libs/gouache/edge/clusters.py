"""The edge's upstream clusters (gRPC over h2c or mTLS, storage's file server) and limits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gouache.edge.envoy_json import address, typed
from gouache.edge.surface import STORAGE_HTTP_CLUSTER
from gouache.edge.tls import upstream_tls

if TYPE_CHECKING:
    from gouache.edge.config import EdgeConfig, Upstream, UpstreamTls


def clusters(config: EdgeConfig) -> list[dict[str, Any]]:
    grpc = [
        _cluster(name, upstream, http2=True, tls=config.upstream_tls)
        for name, upstream in config.grpc_upstreams().items()
    ]
    return [*grpc, _cluster(STORAGE_HTTP_CLUSTER, config.storage_http, http2=False, tls=None)]


def _cluster(
    name: str, upstream: Upstream, *, http2: bool, tls: UpstreamTls | None
) -> dict[str, Any]:
    """STRICT_DNS so that a Kubernetes headless service spreads gRPC over every pod."""
    protocol: dict[str, Any] = {"http2_protocol_options" if http2 else "http_protocol_options": {}}
    endpoint = {"endpoint": {"address": address(upstream.host, upstream.port)}}
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "2s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": typed(
                "extensions.upstreams.http.v3.HttpProtocolOptions",
                explicit_http_config=protocol,
            )
        },
    }
    if tls is not None:
        cluster["transport_socket"] = upstream_tls(upstream, tls)
    return cluster


def overload_manager() -> dict[str, Any]:
    """A global connection cap, which Envoy asks every edge to set."""
    return {
        "resource_monitors": [
            {
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": typed(
                    "extensions.resource_monitors.downstream_connections.v3."
                    "DownstreamConnectionsConfig",
                    max_active_downstream_connections=50000,
                ),
            }
        ]
    }
