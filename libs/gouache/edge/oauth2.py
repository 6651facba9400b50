"""The standard OAuth2 token endpoint at the edge (RFC 6749 §4.4, client credentials).

A POST /v1/auth/token whose body is application/x-www-form-urlencoded takes its own route:
a transcoder of that route alone hands the raw body (and the Authorization header, as
metadata) to auth's OAuth2Service, whose google.api.http rule binds the same path; JSON
bodies keep going to AuthService.IssueToken through the edge's transcoder, which does not
know OAuth2Service. The answer is an HttpBody, the RFC 6749 JSON document itself; its HTTP
status (400 or 401 on error) comes back in the x-gouache-http-status header, which a small
Lua filter, enabled on this route only, turns into the response status and removes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pb2

from gouache.edge.envoy_json import BUFFER, TRANSCODER, TYPE_PREFIX, disabled, seconds, typed
from gouache.edge.transcoder import descriptor_subset, transcoder_config

if TYPE_CHECKING:
    from gouache.edge.config import EdgeConfig

OAUTH2_SERVICE = "gouache.auth.v1.OAuth2Service"
TOKEN_PATH = "/v1/auth/token"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# The response header in which auth's OAuth2Service names the HTTP status of its answer.
STATUS_HEADER = "x-gouache-http-status"
STATUS_FILTER = "gouache.oauth2.status"
_UPSTREAM = "auth"
_SCRIPT = "apply-status"

_APPLY_STATUS = f"""
function envoy_on_response(handle)
  local headers = handle:headers()
  local status = headers:get("{STATUS_HEADER}")
  if status ~= nil then
    headers:remove("{STATUS_HEADER}")
    if string.match(status, "^[1-5][0-9][0-9]$") then
      headers:replace(":status", status)
    end
  end
end
"""


def token_routes(
    config: EdgeConfig, descriptor: descriptor_pb2.FileDescriptorSet
) -> list[dict[str, Any]]:
    """The form-encoded token request, before transcoding, and its gRPC call, after: both
    must come before any route that could match them otherwise."""
    # The status filter must be on for the request's first route, which builds its filter
    # chain, and for the route after transcoding, whose script Envoy runs on the response.
    apply_status = {
        "@type": TYPE_PREFIX + "config.route.v3.FilterConfig",
        "config": typed("extensions.filters.http.lua.v3.LuaPerRoute", name=_SCRIPT),
    }
    form = {
        "name": "oauth2-token",
        "match": {
            "path": TOKEN_PATH,
            "headers": [
                {
                    "name": "content-type",
                    "string_match": {"prefix": FORM_CONTENT_TYPE, "ignore_case": True},
                }
            ],
        },
        "route": {"cluster": _UPSTREAM, "timeout": seconds(config.request_timeout_s)},
        "typed_per_filter_config": {
            TRANSCODER: transcoder_config(
                config, descriptor_subset(descriptor, OAUTH2_SERVICE), [OAUTH2_SERVICE]
            ),
            STATUS_FILTER: apply_status,
        },
    }
    # Only the transcoder's own call (it sets x-envoy-original-path) takes this route; a
    # native gRPC call to OAuth2Service is answered like any internal service (gRPC clients
    # use AuthService.IssueToken). The buffer is off like on every gRPC path (the form's
    # body was buffered already, on the first route).
    transcoded = {
        "name": f"{_UPSTREAM}/{OAUTH2_SERVICE}",
        "match": {
            "prefix": f"/{OAUTH2_SERVICE}/",
            "headers": [{"name": "x-envoy-original-path", "present_match": True}],
        },
        "route": {"cluster": _UPSTREAM, "timeout": seconds(config.request_timeout_s)},
        "typed_per_filter_config": {**disabled(BUFFER), STATUS_FILTER: apply_status},
    }
    return [form, transcoded]


def status_filter() -> dict[str, Any]:
    """The Lua filter that applies the status OAuth2Service names; off unless a route (the
    form-encoded token request's) turns it on."""
    return {
        "name": STATUS_FILTER,
        "disabled": True,
        "typed_config": typed(
            "extensions.filters.http.lua.v3.Lua",
            source_codes={_SCRIPT: {"inline_string": _APPLY_STATUS.strip() + "\n"}},
        ),
    }
