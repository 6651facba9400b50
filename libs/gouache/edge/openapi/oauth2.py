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


# RFC 7523 §2.1: the grant that exchanges a single sign-on issuer's JWT.
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
OAUTH2_TOKEN = "OAuth2Token"
# The RFC 6749 §5.2 error codes the token endpoint answers with.
OAUTH2_ERROR_CODES = (
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "temporarily_unavailable",
    "server_error",
)
_OAUTH2_TOKEN_REF = {"$ref": f"#/components/schemas/{OAUTH2_TOKEN}"}
_NO_STORE = {
    "Cache-Control": {
        "description": "no-store: a token or its refusal is never cached (RFC 6749 §5.1)",
        "schema": {"type": "string"},
    }
}
_CHALLENGE = {
    "WWW-Authenticate": {
        "description": 'Basic realm="gouache": with invalid_client, when the client '
        "authenticated by HTTP Basic",
        "schema": {"type": "string"},
    }
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until the client may try again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_FORM_DESCRIPTION = (
    " Also takes RFC 6749's form (application/x-www-form-urlencoded), for standard OAuth2 "
    "clients: grant_type=client_credentials with the API key's id as client_id and its "
    "secret as client_secret, either in the form or by HTTP Basic (Authorization: Basic "
    "base64(client_id:client_secret), RFC 6749 §2.3.1; not both ways at once), or, where "
    f"single sign-on is set up, grant_type={JWT_BEARER_GRANT} with the identity provider's "
    "JWT as assertion (RFC 7523). Either grant takes an optional scope (space-separated, at "
    "most the key's own scopes) and project (a shared project the token acts in; absent: "
    "the personal project). The form is answered as RFC 6749 §5.1 (OAuth2Token), or §5.2 "
    "(OAuth2Error: error and error_description) on a refusal, with Cache-Control: no-store. "
    "Example: curl -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials "
    "-d scope=read:jobs https://HOST/v1/auth/token"
)


def error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "RFC 6749 §5.2: how the form-encoded token request is refused.",
        "required": ["error", "error_description"],
        "properties": {
            "error": {
                "type": "string",
                "enum": list(OAUTH2_ERROR_CODES),
                "description": "invalid_request: a parameter missing, repeated or malformed, "
                "or a project the client may not act in; invalid_client: unknown or revoked "
                "client_id, or a wrong secret (401 with HTTP Basic, else 400); invalid_grant: "
                "a jwt-bearer assertion refused (signature, audience, expiry, or its user); "
                "unauthorized_client: the client may not be issued a token; "
                "unsupported_grant_type; invalid_scope: a scope beyond the key's; "
                "temporarily_unavailable: locked out (429) or the service is busy (503); "
                "server_error (500).",
            },
            "error_description": {"type": "string", "description": "What to fix."},
        },
    }


def token_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "RFC 6749 §5.1: the token the form-encoded request is answered with.",
        "required": ["access_token", "token_type", "expires_in", "scope"],
        "properties": {
            "access_token": {"type": "string", "description": "The bearer token (a JWT)."},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {
                "type": "integer",
                "minimum": 1,
                "description": "Lifetime of the token in seconds.",
            },
            "scope": {
                "type": "string",
                "description": "The granted scopes, space-separated (may be narrower than "
                "the key's).",
            },
        },
    }


def _form_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["grant_type"],
        "properties": {
            "grant_type": {
                "type": "string",
                "enum": ["client_credentials", JWT_BEARER_GRANT],
                "description": "client_credentials: an API key's id and secret; the "
                "jwt-bearer grant (only where single sign-on is set up): an external "
                "issuer's JWT as assertion.",
            },
            "client_id": {
                "type": "string",
                "description": "client_credentials: the API key's id (the part after gk_ "
                "of gk_<id>_<secret>); or send it by HTTP Basic.",
            },
            "client_secret": {
                "type": "string",
                "description": "client_credentials: the API key's secret; or send it by HTTP "
                "Basic.",
            },
            "assertion": {
                "type": "string",
                "description": "jwt-bearer: the JWT the identity provider issued for this "
                "API's audience (required with that grant, refused with the other).",
            },
            "scope": {
                "type": "string",
                "description": "Optional: space-separated scopes (e.g. read:jobs "
                "write:jobs), at most the key's own; absent: all of them.",
            },
            "project": {
                "type": "string",
                "description": "Optional: a shared project (prj_...) the token acts in, of "
                "which the key's user is a member; absent: their personal project.",
            },
        },
    }


_FORM_EXAMPLES = {
    "client_credentials": {
        "summary": "An API key's id and secret in the form, narrowed to reading jobs",
        "value": {
            "grant_type": "client_credentials",
            "client_id": "CLIENT_ID",
            "client_secret": "CLIENT_SECRET",
            "scope": "read:jobs",
        },
    },
    "jwt_bearer": {
        "summary": "A single sign-on issuer's JWT, acting in a shared project",
        "value": {
            "grant_type": JWT_BEARER_GRANT,
            "assertion": "eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl",
            "project": "prj_01JDX0ZQ3N4M5P6Q7R8S9T0V1W",
        },
    },
}


def add_form_to_token_operation(operation: dict[str, Any]) -> None:
    """The form beside the JSON body, its answer, and refusals in either shape."""
    operation["requestBody"]["content"][FORM_CONTENT_TYPE] = {
        "schema": _form_schema(),
        "examples": _FORM_EXAMPLES,
    }
    operation["description"] = (operation.get("description", "") + _FORM_DESCRIPTION).strip()
    success = operation["responses"]["200"]
    success["description"] = "The token: IssueTokenResponse (JSON body) or OAuth2Token (form)."
    success["headers"] = _NO_STORE
    json_answer = success["content"]["application/json"]
    json_answer["schema"] = {"anyOf": [json_answer["schema"], _OAUTH2_TOKEN_REF]}
    for status, text in _REFUSALS.items():
        headers = dict(_NO_STORE)
        if status == "401":
            headers.update(_CHALLENGE)
        if status == "429":
            headers.update(_RETRY_AFTER)
        operation["responses"][status] = {
            "description": text,
            "headers": headers,
            "content": {"application/json": {"schema": {"oneOf": [_ERROR_REF, _OAUTH2_ERROR_REF]}}},
        }


def security_for(scope: str | None) -> list[dict[str, list[str]]]:
    """A bearer token from either scheme; with oauth2, the scope the operation needs."""
    return [{"bearerAuth": []}, {OAUTH2: [scope] if scope else []}]
