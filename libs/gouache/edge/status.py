"""The HTTP status a service asks for beyond the transcoder's mapping of gRPC codes.

A service names it in the x-gouache-http-status trailing metadata of an error (for example
410 Gone for an image whose retention ended, reason `expired`; gouache.runtime.interceptors).
The transcoder hands a trailers-only error's metadata on as response headers; this Lua
filter, after the transcoder on the response path, sets the status from it on REST answers
(JSON) and removes the header. Native gRPC answers (application/grpc) are left alone: their
HTTP status must stay 200. The OAuth2 route's own filter uses the same header the same way.
"""

from __future__ import annotations

from typing import Any

from gouache.edge.envoy_json import typed

STATUS_HEADER = "x-gouache-http-status"
FILTER_NAME = "gouache.http_status"

_SCRIPT = f"""
function envoy_on_response(handle)
  local headers = handle:headers()
  local status = headers:get("{STATUS_HEADER}")
  if status == nil then
    return
  end
  local content_type = headers:get("content-type") or ""
  if string.find(content_type, "application/grpc", 1, true) == 1 then
    return
  end
  headers:remove("{STATUS_HEADER}")
  if string.match(status, "^[1-5][0-9][0-9]$") then
    headers:replace(":status", status)
  end
end
"""


def http_status_filter() -> dict[str, Any]:
    """The Lua filter; it must come before the transcoder in the filter list."""
    return {
        "name": FILTER_NAME,
        "typed_config": typed(
            "extensions.filters.http.lua.v3.Lua",
            default_source_code={"inline_string": _SCRIPT.strip() + "\n"},
        ),
    }
