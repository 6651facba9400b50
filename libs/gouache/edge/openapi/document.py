"""The OpenAPI 3 document of the REST API the edge serves: the transcoded RPCs (from the
protos' google.api.http rules), the file transfers under /v1/files/, and /openapi.json."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from google.protobuf import descriptor_pb2

from gouache.edge.oauth2 import TOKEN_PATH
from gouache.edge.openapi.comments import Comments
from gouache.edge.openapi.oauth2 import (
    OAUTH2,
    OAUTH2_ERROR,
    OAUTH2_TOKEN,
    add_form_to_token_operation,
    security_for,
)
from gouache.edge.openapi.oauth2 import error_schema as oauth2_error_schema
from gouache.edge.openapi.oauth2 import security_scheme as oauth2_scheme
from gouache.edge.openapi.oauth2 import token_schema as oauth2_token_schema
from gouache.edge.openapi.operations import Binding, OperationBuilder, bindings
from gouache.edge.openapi.schemas import Direction, Schema, SchemaSet
from gouache.edge.surface import FILES_PREFIX, GRPC_SERVICES

OPENAPI_PATH = "/openapi.json"
BEARER = "bearerAuth"
ERROR = "#/components/schemas/Error"
# The scope a bearer token needs to download an image (services/storage/files.py).
DOWNLOAD_SCOPE = "read:jobs"

_DESCRIPTION = """\
gouache's public REST API: neural style transfer jobs, batches, images, styles, models,
webhooks and feedback. Every call except the token exchange takes an access token:
POST /v1/auth/token with an API key, then send `Authorization: Bearer <access_token>`.

The edge (Envoy) transcodes each call to the gRPC service behind it, so bodies follow the
proto3 JSON mapping: field names as in the protos (snake_case; lowerCamelCase is accepted in
requests too), every field without presence present in responses even at its default,
64-bit integers as strings, enums by name, timestamps as RFC 3339 strings and durations as
`"10s"`; `null` stands for a field's default. Unknown request fields (unless null) and
query parameters are refused with 400. Every error,
whatever answers it, is `{"code": <google.rpc.Code>, "message": "...", "details": [...]}`
with the HTTP status of the canonical gRPC mapping."""

# Headers the services read from the call's metadata, beside the request message.
_IDEMPOTENCY_KEY: Schema = {
    "name": "idempotency-key",
    "in": "header",
    "required": False,
    "description": "Retrying with the same key returns the same result (24 h); the same as "
    "the body's idempotency_key.",
    "schema": {"type": "string", "maxLength": 200},
}
HEADERS: Mapping[str, list[Schema]] = {
    "/gouache.jobs.v1.JobsService/CreateJob": [_IDEMPOTENCY_KEY],
    "/gouache.jobs.v1.JobsService/CreateBatch": [_IDEMPOTENCY_KEY],
}

# Error statuses any transcoded call may answer (the canonical gRPC -> HTTP mapping, and
# Envoy's own 413 for a JSON body past the limit), each with the {code, message, details} body.
_ERRORS: Mapping[str, str] = {
    "400": "INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE: the message says what to fix",
    "401": "UNAUTHENTICATED: no token, or an expired or invalid one",
    "403": "PERMISSION_DENIED: the token lacks the scope, or the resource is not the caller's",
    "404": "NOT_FOUND: no such resource (or path)",
    "409": "ALREADY_EXISTS or ABORTED",
    "413": "the request body is larger than the edge accepts",
    "429": "RESOURCE_EXHAUSTED: rate limit or quota; retry after the Retry-After seconds",
    "500": "INTERNAL: a server error (logged)",
    "503": "UNAVAILABLE: a service is restarting or overloaded; retry with backoff",
    "504": "DEADLINE_EXCEEDED",
}
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")


def build(
    files: descriptor_pb2.FileDescriptorSet,
    *,
    policies: Mapping[str, str],
    version: str,
) -> dict[str, Any]:
    """The document for the RPCs of the edge's public services that have HTTP rules.

    policies maps gRPC paths (/package.Service/Method) to the services' method policies:
    "public" (no token), "authenticated" (any token) or the scope a token must hold."""
    comments = Comments(files)
    schemas = SchemaSet(files, comments)
    builder = OperationBuilder(
        schemas=schemas,
        comments=comments,
        policies=policies,
        headers=HEADERS,
        error_responses={
            status: {"$ref": f"#/components/responses/{status}"} for status in _ERRORS
        },
    )
    paths: dict[str, dict[str, Any]] = {}
    found = list(bindings(files, frozenset(GRPC_SERVICES.values())))
    for binding in found:
        item = paths.setdefault(binding.path, {})
        if binding.http_method in item:
            raise ValueError(f"two RPCs bind {binding.http_method.upper()} {binding.path}")
        item[binding.http_method] = builder.operation(binding)
    token = paths.get(TOKEN_PATH, {}).get("post")
    if token is not None:
        add_form_to_token_operation(token)
    schemas.use(".gouache.storage.v1.Image", Direction.RESPONSE)
    paths[f"{FILES_PREFIX}{{image_id}}"] = _file_transfers(schemas)
    paths[OPENAPI_PATH] = _self_description()
    return {
        "openapi": "3.0.3",
        "info": {"title": "gouache REST API", "version": version, "description": _DESCRIPTION},
        "servers": [{"url": "/", "description": "the edge that serves this document"}],
        "security": security_for(None),
        "tags": _tags(files, comments, found),
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {
                **schemas.components(),
                "Error": _error_schema(),
                OAUTH2_ERROR: oauth2_error_schema(),
                OAUTH2_TOKEN: oauth2_token_schema(),
            },
            "responses": {
                status: {
                    "description": text,
                    "content": {"application/json": {"schema": {"$ref": ERROR}}},
                }
                for status, text in _ERRORS.items()
            },
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from POST /v1/auth/token (EdDSA-signed "
                    "JWT, verifiable with GET /v1/auth/jwks). An operation's "
                    "x-required-scope names the scope the token must hold.",
                },
                OAUTH2: oauth2_scheme(),
            },
        },
    }


def dumps(document: Mapping[str, Any]) -> str:
    """The document as committed and served: stable, indented JSON with a final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _tags(
    files: descriptor_pb2.FileDescriptorSet, comments: Comments, found: list[Binding]
) -> list[dict[str, str]]:
    used = {binding.service for binding in found}
    tags = []
    for file in files.file:
        for index, service in enumerate(file.service):
            if f"{file.package}.{service.name}" in used:
                tag = {"name": service.name}
                text = comments.get(file.name, (6, index))
                if text:
                    tag["description"] = text
                tags.append(tag)
    tags.append({"name": "Files", "description": "Image bytes in and out, by signed URL."})
    tags.append({"name": "OpenAPI", "description": "This document, generated from the protos."})
    return tags


def _error_schema() -> Schema:
    return {
        "type": "object",
        "description": "A google.rpc.Status: every error the edge answers has this shape.",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {
                "type": "integer",
                "format": "int32",
                "description": "The google.rpc.Code, e.g. 3 for INVALID_ARGUMENT.",
            },
            "message": {"type": "string", "description": "What went wrong, for a person."},
            "details": {
                "type": "array",
                "description": "google.rpc error details (ErrorInfo, BadRequest, ...).",
                "items": {
                    "type": "object",
                    "required": ["@type"],
                    "properties": {"@type": {"type": "string"}},
                    "additionalProperties": True,
                },
            },
        },
    }


def _error_refs(*statuses: str) -> dict[str, Schema]:
    return {status: {"$ref": f"#/components/responses/{status}"} for status in statuses}


def _error(description: str) -> Schema:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR}}},
    }


def _file_transfers(schemas: SchemaSet) -> dict[str, Any]:
    """PUT and GET on /v1/files/{image_id}: routed by the edge to storage's file server
    (services/storage/files.py) without transcoding."""
    signature = [
        {
            "name": "expires",
            "in": "query",
            "description": "Unix time in seconds after which the signed URL is refused.",
            "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
        },
        {
            "name": "sig",
            "in": "query",
            "description": "HMAC of the method, image id and expiry (base64url).",
            "schema": {"type": "string"},
        },
    ]
    image = schemas.ref(".gouache.storage.v1.Image", Direction.RESPONSE)
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "parameters": [
            {"name": "image_id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "put": {
            "operationId": "Files_Upload",
            "tags": ["Files"],
            "summary": "Uploads an image's bytes to the signed upload_url from POST /v1/uploads/sign.",
            "description": "Send the Content-Type given to SignUpload and a Content-Length; "
            "the bytes are checked (format, size, dimensions) before the image exists.",
            "security": [],
            "parameters": [{**parameter, "required": True} for parameter in signature],
            "requestBody": {
                "required": True,
                "content": {content_type: binary for content_type in _IMAGE_TYPES},
            },
            "responses": {
                "201": {
                    "description": "Stored: the image, as GET /v1/images/{image_id} shows it.",
                    "headers": {
                        "Location": {"description": "its file URL", "schema": {"type": "string"}}
                    },
                    "content": {"application/json": {"schema": image}},
                },
                **_error_refs("400", "403", "404", "409"),
                "411": _error("the upload did not declare its Content-Length"),
                "413": _error("the upload is larger than the edge or storage accepts"),
                "415": _error("not an image storage can read, or not the Content-Type signed"),
                **_error_refs("429", "500", "503"),
            },
        },
        "get": {
            "operationId": "Files_Download",
            "tags": ["Files"],
            "summary": "Downloads an image's bytes: by signed URL, or with a bearer token.",
            "security": [{}, *security_for(DOWNLOAD_SCOPE)],
            "parameters": signature,
            "responses": {
                "200": {
                    "description": "The image's encoded bytes.",
                    "content": {content_type: binary for content_type in _IMAGE_TYPES},
                },
                "304": {"description": "Not modified (If-None-Match matched its ETag)."},
                **_error_refs("400", "401", "403", "404", "429", "500", "503"),
            },
        },
    }


def _self_description() -> dict[str, Any]:
    return {
        "get": {
            "operationId": "OpenApi_Get",
            "tags": ["OpenAPI"],
            "summary": "This document.",
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI document of this API.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
