"""405 Method Not Allowed, with an Allow header, for a path of the REST API asked with a
method it does not take (PATCH /v1/jobs, DELETE /v1/jobs/{job_id}:cancel, POST /openapi.json).

A REST request the transcoder matched is a gRPC request by the time the router chooses its
route; one it did not match arrives with its own path, and was a plain 404 ("no route")
even when only the method was wrong. The paths come from the same HTTP rules the transcoder and the
OpenAPI document read (gouache.edge.openapi.operations.bindings).
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf import descriptor_pb2

from gouache.edge.envoy_json import BUFFER, TRANSCODER, disabled
from gouache.edge.openapi.document import OPENAPI_PATH
from gouache.edge.openapi.operations import bindings
from gouache.edge.surface import GRPC_SERVICES

_VARIABLE = re.compile(r"\{[^}]*\}")
# What a path variable matches: one segment without a colon, so that `{job_id}` does not
# take `0:cancel` (a POST there is CancelJob's, which `{job_id}` alone would refuse).
_SEGMENT = "[^/:]+"


def method_not_allowed_routes(files: descriptor_pb2.FileDescriptorSet) -> list[dict[str, Any]]:
    """One route per REST path template, answering 405 with the methods it takes."""
    allowed: dict[str, tuple[str, set[str]]] = {}
    for binding in bindings(files, frozenset(GRPC_SERVICES.values())):
        regex = _path_regex(binding.template)
        allowed.setdefault(regex, (binding.path, set()))[1].add(binding.http_method.upper())
    allowed[re.escape(OPENAPI_PATH)] = (OPENAPI_PATH, {"GET", "HEAD"})
    return [_route(regex, path, methods) for regex, (path, methods) in sorted(allowed.items())]


def _path_regex(template: str) -> str:
    literals = _VARIABLE.split(template)
    return _SEGMENT.join(re.escape(literal) for literal in literals)


def _route(regex: str, path: str, methods: set[str]) -> dict[str, Any]:
    allow = ", ".join(sorted(methods))
    return {
        "name": f"method-not-allowed {path}",
        # Filters ask for the route before the transcoder rewrites the path, so a method
        # the path takes must not match here: POST /v1/jobs would never be transcoded.
        "match": {
            "safe_regex": {"regex": regex},
            "headers": [
                {
                    "name": ":method",
                    "string_match": {"safe_regex": {"regex": "|".join(sorted(methods))}},
                    "invert_match": True,
                }
            ],
        },
        "direct_response": {
            "status": 405,
            "body": {"inline_string": f"{path} takes {allow} only"},
        },
        "response_headers_to_add": [
            {
                "header": {"key": "allow", "value": allow},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ],
        # The transcoder is off here: it answers a method it has no rule for with 404
        # (reject_unknown_method).
        "typed_per_filter_config": disabled(TRANSCODER, BUFFER),
    }
