"""Small builders for Envoy v3 JSON: typed configs, addresses, durations, filter switches."""

from __future__ import annotations

from typing import Any

TYPE_PREFIX = "type.googleapis.com/envoy."
TRANSCODER = "envoy.filters.http.grpc_json_transcoder"
BUFFER = "envoy.filters.http.buffer"


def address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def typed(type_name: str, **fields: Any) -> dict[str, Any]:
    """A typed_config: type_name is relative to the envoy. package."""
    return {"@type": TYPE_PREFIX + type_name, **fields}


def seconds(value: float) -> str:
    return f"{value:g}s"


def disabled(*filters: str) -> dict[str, Any]:
    """typed_per_filter_config that turns filters off on one route."""
    off = {"@type": TYPE_PREFIX + "config.route.v3.FilterConfig", "disabled": True}
    return {name: off for name in filters}


def data_source(path: object) -> dict[str, str]:
    """A DataSource Envoy reads from a file at start (certificates, keys)."""
    return {"filename": str(path)}
