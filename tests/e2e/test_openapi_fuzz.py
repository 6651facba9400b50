"""schemathesis against a live `gouache up`: requests generated from the OpenAPI document
(the one the edge serves at /openapi.json: tests/integration/edge/test_openapi.py), sent with
a user's token; no answer may be a server error (5xx), and every answer must be one the
document describes (status code, content type, body schema, headers).

Bounded: MAX_EXAMPLES generated requests per operation (plus shrinking when one fails), no
examples database, and a time limit per operation. A user's token (not the admin's) keeps
the fuzzed calls from re-routing models or creating users that other tests of the session
rely on; those calls are checked for their refusal.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from gouache.cli.mesh import Mesh
from gouache.client import GouacheClient
from gouache.edge.openapi import packaged_openapi
from tests.e2e.users import new_user_key

# GOUACHE_FUZZ_EXAMPLES=500 (and a longer --timeout) for a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("GOUACHE_FUZZ_EXAMPLES", "25"))
REQUEST_TIMEOUT_S = 30.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

# Two checks ask more of the document than protos can say; every other check (no 5xx,
# documented status, content type, body schema and headers, refusal without a valid token)
# holds each answer to the document.
# - positive_data_acceptance: proto3 has no required fields or formats, so the document
#   cannot say which ids and values a service accepts; a well-formed request naming an
#   unknown job is rightly a 400 or 404.
# - negative_data_rejection: the transcoder's proto3 JSON parser accepts more than the
#   canonical form the document shows (lowerCamelCase names, integers as strings or as 2.0,
#   null for any field, an unknown field set to null), so a request outside the document
#   may rightly succeed.
LEFT_OUT_CHECKS = [positive_data_acceptance, negative_data_rejection]

SCHEMA = schemathesis.openapi.from_path(str(packaged_openapi()))


def _labels(*, negatable: bool = False) -> list[str]:
    """The operations' labels ("GET /v1/jobs"); negatable: only those with parameters or a
    body to make invalid (GET /v1/models has nothing to get wrong)."""
    operations = [result.ok() for result in SCHEMA.get_all_operations()]
    return sorted(
        operation.label
        for operation in operations
        if not negatable
        or "requestBody" in operation.definition.raw
        or operation.definition.raw.get("parameters")
        or operation.path.count("{")
    )


@SCHEMA.auth()
class UserToken:
    """A user's access token on every case that needs one, through schemathesis's auth (so
    that its auth checks send the case again without it, and with a wrong one)."""

    token = ""

    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        return UserToken.token

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture(scope="module")
def user_token(mesh: Mesh, admin: GouacheClient) -> str:
    with GouacheClient(mesh.config.public_url, new_user_key(admin, mesh.config.public_url)) as user:
        UserToken.token = user.token()
        return UserToken.token


CASES = [
    *((label, GenerationMode.POSITIVE) for label in _labels()),
    *((label, GenerationMode.NEGATIVE) for label in _labels(negatable=True)),
]


@pytest.mark.parametrize(
    ("label", "mode"), CASES, ids=[f"{m.value}: {label}" for label, m in CASES]
)
def test_the_api_answers_as_its_document_says(
    mesh: Mesh, user_token: str, label: str, mode: GenerationMode
) -> None:
    """Positive: requests the document allows. Negative: requests it does not (wrong types,
    unknown fields, missing path segments), which must be refused with a 4xx."""
    operation = SCHEMA.find_operation_by_label(label)
    assert operation is not None

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=mesh.config.public_url,
            timeout=REQUEST_TIMEOUT_S,
            excluded_checks=LEFT_OUT_CHECKS,
        )

    answers_as_documented()
