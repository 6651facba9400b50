"""The standard OAuth2 face of the token endpoint in the document: POST /v1/auth/token also
takes an RFC 6749 form (gouache.edge.oauth2 routes it to auth's OAuth2Service, which the
edge's transcoder does not describe), and an `oauth2` security scheme whose client
credentials flow uses it, beside the plain bearer scheme, with each operation's scope."""

from __future__ import annotations

from typing import Any

from gouache.edge.oauth2 import FORM_CONTENT_TYPE, TOKEN_PATH
from gouache.runtime.auth import SCOPES

OAUTH2 = "oauth2"
OAUTH2_ERROR = "OAuth2Error"
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_OAUTH2_ERROR_REF = {"$ref": f"#/components/schemas/{OAUTH2_ERROR}"}
# What the form answers with an RFC 6749 §5.2 document, and the JSON body with an Error.
_REFUSALS = {
    "400": "invalid_request, unsupported_grant_type, invalid_scope, ... (form); INVALID_ARGUMENT (JSON)",
    "401": "invalid_client with HTTP Basic (form, with WWW-Authenticate); UNAUTHENTICATED (JSON)",
    "429": "locked out after failed attempts: retry after the Retry-After seconds",
    "500": "server_error (form); INTERNAL (JSON)",
    "503": "temporarily_unavailable (form); UNAVAILABLE (JSON)",
}


def security_scheme() -> dict[str, Any]:
    return {
        "type": "oauth2",
        "description": "OAuth2 client credentials: client_id is an API key's id and "
        "client_secret its secret (the key is gk_<client_id>_<client_secret>). The token is "
        "the same bearer token as bearerAuth's.",
        "flows": {
            "clientCredentials": {
                "tokenUrl": TOKEN_PATH,
                "scopes": {scope: f"the {scope} scope" for scope in SCOPES},
            }
        },
    }


def error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "RFC 6749 §5.2: how the form-encoded token request is refused.",
        "required": ["error", "error_description"],
        "properties": {
            "error": {"type": "string", "description": "e.g. invalid_client, invalid_scope"},
            "error_description": {"type": "string", "description": "What to fix."},
        },
    }


def add_form_to_token_operation(operation: dict[str, Any]) -> None:
    """The form beside the JSON body, and refusals in either shape."""
    operation["requestBody"]["content"][FORM_CONTENT_TYPE] = {
        "schema": {
            "type": "object",
            "required": ["grant_type"],
            "properties": {
                "grant_type": {
                    "type": "string",
                    "description": "client_credentials (or, where single sign-on is set "
                    "up, urn:ietf:params:oauth:grant-type:jwt-bearer with an assertion)",
                },
                "client_id": {"type": "string", "description": "The API key's id."},
                "client_secret": {"type": "string", "description": "The API key's secret."},
                "scope": {"type": "string", "description": "Space-separated scopes, narrower."},
                "assertion": {"type": "string", "description": "The jwt-bearer grant's token."},
            },
        }
    }
    operation["description"] = (
        operation.get("description", "")
        + " Also takes RFC 6749's form (application/x-www-form-urlencoded: grant_type="
        "client_credentials with client_id and client_secret, in the body or by HTTP Basic), "
        "answered as RFC 6749 §5.1, or §5.2 on a refusal."
    ).strip()
    for status, text in _REFUSALS.items():
        operation["responses"][status] = {
            "description": text,
            "content": {"application/json": {"schema": {"oneOf": [_ERROR_REF, _OAUTH2_ERROR_REF]}}},
        }


def security_for(scope: str | None) -> list[dict[str, list[str]]]:
    """A bearer token from either scheme; with oauth2, the scope the operation needs."""
    return [{"bearerAuth": []}, {OAUTH2: [scope] if scope else []}]
