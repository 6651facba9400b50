"""The first HTTP filter of the edge: request headers the gRPC services behind it would
refuse as metadata are dropped before they get there.

Envoy passes a request's headers upstream as gRPC metadata. A header name that HTTP allows
but gRPC does not (`a!b`, `x#y`: gRPC keys are [0-9a-z_.-]) made the upstream's gRPC server
refuse the whole call with INTERNAL ("Illegal header key"), a 500 for a client mistake that
schemathesis found (tests/e2e/test_openapi_fuzz.py); so did a REST request carrying gRPC's
own headers (`grpc-timeout: xyz`, `x-bin: <not base64>`, "Error parsing ... metadata").
Underscored names are dropped by the connection manager already (headers_with_underscores_action).
Names gRPC cannot carry are dropped from every request, as a header a server does not know
is ignored; `grpc-*` and `*-bin` only from REST requests, for which they mean nothing (a
native gRPC call keeps its deadline and binary metadata).
"""

from __future__ import annotations

from typing import Any

from gouache.edge.envoy_json import typed

# A name of its own: the OAuth2 route has a Lua filter of its own too (oauth2.py).
LUA = "gouache.grpc_safe_headers"

_DROP_UNCARRIABLE_HEADERS = """
function envoy_on_request(handle)
  local headers = handle:headers()
  local grpc = string.sub(headers:get("content-type") or "", 1, 16) == "application/grpc"
  local dropped = {}
  for key, _ in pairs(headers) do
    if string.sub(key, 1, 1) ~= ":" then
      local uncarriable = string.find(key, "[^0-9a-z_%.%-]") ~= nil
      local grpc_only = string.sub(key, 1, 5) == "grpc-" or string.sub(key, -4) == "-bin"
      if uncarriable or (grpc_only and not grpc) then
        dropped[#dropped + 1] = key
      end
    end
  end
  for _, key in ipairs(dropped) do
    headers:remove(key)
  end
end
"""


def grpc_safe_headers() -> dict[str, Any]:
    """The Lua filter that drops what gRPC metadata cannot carry (see the module's doc)."""
    return {
        "name": LUA,
        "typed_config": typed(
            "extensions.filters.http.lua.v3.Lua",
            default_source_code={"inline_string": _DROP_UNCARRIABLE_HEADERS.strip() + "\n"},
        ),
    }
