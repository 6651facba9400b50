"""The edge's route for GET /openapi.json: the document, answered by Envoy itself."""

from __future__ import annotations

from typing import Any

from gouache.edge.envoy_json import BUFFER, TRANSCODER, disabled
from gouache.edge.openapi.document import OPENAPI_PATH


def document_route(document: str) -> dict[str, Any]:
    """GET (and HEAD) /openapi.json answers the document from the config (inline: the Envoy
    container of a cluster has no gouache package to read a file from); other methods get
    405 (gouache.edge.methods)."""
    return {
        "name": "openapi",
        "match": {
            "path": OPENAPI_PATH,
            "headers": [{"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD"}}}],
        },
        "direct_response": {"status": 200, "body": {"inline_string": document}},
        "response_headers_to_add": [
            {
                "header": {"key": "content-type", "value": "application/json"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            },
            {
                "header": {"key": "cache-control", "value": "no-cache"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            },
        ],
        "typed_per_filter_config": disabled(TRANSCODER, BUFFER),
    }


def largest_direct_response(routes: list[dict[str, Any]]) -> int:
    """The longest inline body among routes, for the route config's
    max_direct_response_body_size_bytes (Envoy refuses a config with a longer one; 4 KiB
    unless set)."""
    sizes = [
        len(route["direct_response"]["body"]["inline_string"].encode())
        for route in routes
        if "inline_string" in route.get("direct_response", {}).get("body", {})
    ]
    return max([4096, *sizes])
