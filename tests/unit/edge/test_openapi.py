"""The OpenAPI document generated from the protos says what the edge's transcoder does."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from google.api import annotations_pb2  # noqa: F401  (registers google.api.http)
from google.protobuf import descriptor_pb2

from gouache.edge import packaged_descriptor
from gouache.edge.openapi import build, dumps, packaged_openapi

CONTRACTS_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "contracts.py"
POLICIES = {
    "/gouache.auth.v1.AuthService/IssueToken": "public",
    "/gouache.auth.v1.AuthService/WhoAmI": "authenticated",
    "/gouache.jobs.v1.JobsService/CreateJob": "write:jobs",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    files = descriptor_pb2.FileDescriptorSet.FromString(packaged_descriptor().read_bytes())
    return build(files, policies=POLICIES, version="1.2.3")


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def _ref(schema: dict[str, Any]) -> str:
    """The component a property names, bare or (with a description beside it) in allOf."""
    ref: str = schema["allOf"][0]["$ref"] if "allOf" in schema else schema["$ref"]
    return ref.removeprefix("#/components/schemas/")


def _parameters(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {parameter["name"]: parameter for parameter in operation.get("parameters", [])}


def test_the_committed_document_is_the_packaged_descriptors() -> None:
    """The committed file parses and is an OpenAPI 3 document (its freshness against the
    protos is checked with the rest of gouache.contracts: tests/unit/contracts)."""
    committed = json.loads(packaged_openapi().read_text())

    assert committed["openapi"] == "3.0.3"
    assert "/v1/auth/token" in committed["paths"]


def test_path_variables_become_required_path_parameters(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/jobs/{job_id}"]["get"]

    assert operation["operationId"] == "JobsService_GetJob"
    assert _parameters(operation)["job_id"] == {
        "name": "job_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
    }
    assert "requestBody" not in operation


def test_custom_verbs_keep_their_suffix(document: dict[str, Any]) -> None:
    assert "post" in document["paths"]["/v1/jobs/{job_id}:cancel"]


def test_fields_not_in_the_path_of_a_get_are_query_parameters(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/jobs"]["get"]
    wait = document["paths"]["/v1/jobs/{job_id}:wait"]["get"]

    assert set(_parameters(operation)) == {"page_size", "page_token", "status"}
    assert _parameters(operation)["page_size"]["schema"]["format"] == "int32"
    # A Duration is one string in the query, `?timeout=10s`.
    assert _parameters(wait)["timeout"]["schema"]["pattern"] == r"^-?[0-9]+(\.[0-9]{1,9})?s$"


def test_body_star_is_the_request_without_path_fields(document: dict[str, Any]) -> None:
    create = document["paths"]["/v1/jobs"]["post"]
    cancel = document["paths"]["/v1/jobs/{job_id}:cancel"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]

    assert body == {"$ref": "#/components/schemas/gouache.jobs.v1.CreateJobRequest"}
    request = _schema(document, "gouache.jobs.v1.CreateJobRequest")
    assert request["additionalProperties"] is False
    assert "required" not in request
    assert "params" in request["properties"]
    cancel_body = cancel["requestBody"]["content"]["application/json"]["schema"]
    assert cancel_body["properties"] == {}
    assert cancel_body["additionalProperties"] is False
    assert not create["requestBody"]["required"]


def test_responses_use_proto_names_and_require_fields_without_presence(
    document: dict[str, Any],
) -> None:
    job = _schema(document, "gouache.jobs.v1.Job")

    assert "latency_ms" in job["properties"]
    assert "latencyMs" not in job["properties"]
    # Printed at their defaults (always_print_primitive_fields): scalars and lists.
    assert {"job_id", "status", "latency_ms", "style_urls", "cached"} <= set(job["required"])
    # Printed only when set: proto3 optional and message fields.
    assert not {"result_url", "error", "params", "created_at"} & set(job["required"])
    assert job["properties"]["created_at"]["format"] == "date-time"
    assert "additionalProperties" not in job


def test_int64_is_a_string_in_json(document: dict[str, Any]) -> None:
    stats = _schema(document, "gouache.feedback.v1.ModelVersionStats")

    assert stats["properties"]["jobs_succeeded"]["type"] == "string"
    assert stats["properties"]["error_rate"]["type"] == "number"


def test_a_message_in_both_directions_has_an_input_form(document: dict[str, Any]) -> None:
    job = _schema(document, "gouache.jobs.v1.Job")
    request = _schema(document, "gouache.jobs.v1.CreateJobRequest")

    assert _ref(job["properties"]["params"]) == "gouache.common.v1.StylizeParams"
    assert _ref(request["properties"]["params"]) == "gouache.common.v1.StylizeParamsInput"
    params = _schema(document, "gouache.common.v1.StylizeParamsInput")
    assert params["properties"]["seed"]["maximum"] == 2**32 - 1


def test_comments_become_descriptions_without_lint_exceptions(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/jobs/{job_id}"]["get"]

    assert operation["summary"] == "Returns one of the caller's jobs."
    assert "buf:lint" not in json.dumps(document)


def test_security_follows_the_method_policies(document: dict[str, Any]) -> None:
    create = document["paths"]["/v1/jobs"]["post"]

    assert document["security"] == [{"bearerAuth": []}, {"oauth2": []}]
    assert document["paths"]["/v1/auth/token"]["post"]["security"] == []
    assert "security" not in document["paths"]["/v1/auth/whoami"]["get"]
    assert create["security"] == [{"bearerAuth": []}, {"oauth2": ["write:jobs"]}]
    assert create["x-required-scope"] == "write:jobs"
    schemes = document["components"]["securitySchemes"]
    assert (schemes["bearerAuth"]["type"], schemes["bearerAuth"]["scheme"]) == ("http", "bearer")
    flow = schemes["oauth2"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/v1/auth/token"
    assert "write:jobs" in flow["scopes"]


def test_the_token_endpoint_takes_the_oauth2_form_too(document: dict[str, Any]) -> None:
    token = document["paths"]["/v1/auth/token"]["post"]
    form = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]

    assert form["required"] == ["grant_type"]
    assert {"client_id", "client_secret", "scope"} <= set(form["properties"])
    assert "application/json" in token["requestBody"]["content"]
    refusal = token["responses"]["401"]["content"]["application/json"]["schema"]
    assert refusal["oneOf"] == [
        {"$ref": "#/components/schemas/Error"},
        {"$ref": "#/components/schemas/OAuth2Error"},
    ]


def test_a_reader_can_call_the_oauth2_form(document: dict[str, Any]) -> None:
    """Both grants, their optional scope and project, HTTP Basic, the RFC 6749 answers."""
    token = document["paths"]["/v1/auth/token"]["post"]
    form = token["requestBody"]["content"]["application/x-www-form-urlencoded"]
    fields = form["schema"]["properties"]
    assert fields["grant_type"]["enum"] == [
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ]
    assert {"client_id", "client_secret", "assertion", "scope", "project"} <= set(fields)
    assert set(form["examples"]) == {"client_credentials", "jwt_bearer"}
    for example in form["examples"].values():
        assert set(example["value"]) <= set(fields)
    assert "HTTP Basic" in token["description"]
    assert "Authorization: Basic" in token["description"]
    success = token["responses"]["200"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/OAuth2Token"} in success["anyOf"]
    issued = _schema(document, "OAuth2Token")
    assert issued["required"] == ["access_token", "token_type", "expires_in", "scope"]
    error = _schema(document, "OAuth2Error")["properties"]["error"]
    assert {"invalid_client", "invalid_grant", "unsupported_grant_type"} <= set(error["enum"])
    assert "WWW-Authenticate" in token["responses"]["401"]["headers"]
    assert "Retry-After" in token["responses"]["429"]["headers"]


def test_errors_have_the_status_shape_envoy_answers(document: dict[str, Any]) -> None:
    responses = document["paths"]["/v1/jobs"]["post"]["responses"]
    get_responses = document["paths"]["/v1/jobs/{job_id}"]["get"]["responses"]

    assert {"200", "400", "401", "403", "404", "413", "429", "503"} <= set(responses)
    assert "413" not in get_responses  # no body to be too large
    error = _schema(document, "Error")
    assert error["required"] == ["code", "message", "details"]


def test_the_idempotency_header_is_documented(document: dict[str, Any]) -> None:
    parameters = _parameters(document["paths"]["/v1/jobs"]["post"])

    assert parameters["idempotency-key"]["in"] == "header"


def test_file_transfers_and_the_document_itself_are_described(document: dict[str, Any]) -> None:
    files = document["paths"]["/v1/files/{image_id}"]

    assert files["put"]["security"] == []
    assert set(files["put"]["requestBody"]["content"]) == {"image/png", "image/jpeg", "image/webp"}
    assert files["put"]["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/gouache.storage.v1.Image"
    }
    assert {"411", "413", "415"} <= set(files["put"]["responses"])
    assert files["get"]["security"] == [{}, {"bearerAuth": []}, {"oauth2": ["read:jobs"]}]
    assert document["paths"]["/openapi.json"]["get"]["security"] == []


def test_internal_services_are_left_out(document: dict[str, Any]) -> None:
    text = dumps(document)

    assert "TilingService" not in text
    assert "InferenceService" not in text
    assert "SetModelEndpoint" not in text  # no HTTP rule


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    text = dumps(document)
    components = document["components"]
    for kind in ("schemas", "responses"):
        prefix = f'"#/components/{kind}/'
        for chunk in text.split(prefix)[1:]:
            assert chunk.split('"', 1)[0] in components[kind]


def test_the_document_is_deterministic(document: dict[str, Any]) -> None:
    files = descriptor_pb2.FileDescriptorSet.FromString(packaged_descriptor().read_bytes())

    assert dumps(build(files, policies=POLICIES, version="1.2.3")) == dumps(document)


def test_a_stale_committed_document_fails_the_contracts_check(tmp_path: Path) -> None:
    """scripts/contracts.py check compares a fresh generation with gouache/contracts, the
    document included: one that no longer matches the protos is named."""
    spec = importlib.util.spec_from_file_location("contracts_script", CONTRACTS_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    contracts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(contracts)
    committed = tmp_path / "committed"
    shutil.copytree(contracts.OUT, committed, ignore=shutil.ignore_patterns("__pycache__"))
    fresh = tmp_path / "fresh"
    contracts.generate(fresh)
    assert contracts._same_tree(fresh, committed) == []

    stale = json.loads((committed / "openapi.json").read_text())
    del stale["paths"]["/v1/jobs"]
    (committed / "openapi.json").write_text(dumps(stale))

    assert contracts._same_tree(fresh, committed) == ["openapi.json"]
