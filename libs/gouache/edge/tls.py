"""TLS transport sockets: the public listener's certificate, and mTLS towards the upstreams."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from gouache.edge.envoy_json import data_source, typed

if TYPE_CHECKING:
    from gouache.edge.config import Upstream, UpstreamTls

_TLS_SOCKET = "envoy.transport_sockets.tls"


def upstream_tls(upstream: Upstream, tls: UpstreamTls) -> dict[str, Any]:
    """Present the client certificate, trust only tls.ca, and check that the upstream's
    certificate names the host the edge dials (DNS or IP SAN), as a gRPC client would."""
    try:
        ipaddress.ip_address(upstream.host)
        san_type = "IP_ADDRESS"
    except ValueError:
        san_type = "DNS"
    context: dict[str, Any] = {
        "common_tls_context": {
            "tls_certificates": [
                {"certificate_chain": data_source(tls.cert), "private_key": data_source(tls.key)}
            ],
            "validation_context": {
                "trusted_ca": data_source(tls.ca),
                "match_typed_subject_alt_names": [
                    {"san_type": san_type, "matcher": {"exact": upstream.host}}
                ],
            },
            "alpn_protocols": ["h2"],
        }
    }
    if san_type == "DNS":
        context["sni"] = upstream.host
    return {
        "name": _TLS_SOCKET,
        "typed_config": typed("extensions.transport_sockets.tls.v3.UpstreamTlsContext", **context),
    }


def downstream_tls(cert: object, key: object) -> dict[str, Any]:
    """TLS on the public listener; ALPN offers h2 (native gRPC, REST) and http/1.1 (REST)."""
    context = {
        "common_tls_context": {
            "tls_certificates": [
                {"certificate_chain": data_source(cert), "private_key": data_source(key)}
            ],
            "alpn_protocols": ["h2", "http/1.1"],
        }
    }
    return {
        "name": _TLS_SOCKET,
        "typed_config": typed(
            "extensions.transport_sockets.tls.v3.DownstreamTlsContext", **context
        ),
    }
