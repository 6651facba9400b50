"""The OAuth2 token endpoint (RFC 6749 §4.4, §5): the form and HTTP Basic read and checked,
and OAuth2Service in process answering in the RFC's form, against the service's own keys."""

from __future__ import annotations

import base64
import json
from typing import Any

import grpc
import jwt
import pytest
from google.api import httpbody_pb2

from gouache.contracts.auth.v1 import auth_pb2, auth_pb2_grpc
from gouache.runtime.errors import InvalidArgument, ResourceExhausted, Unauthenticated
from services.auth.oauth2 import OAuth2Error, parse_token_request, refusal_for
from services.auth.servicer import STATUS_HEADER
from tests.unit.auth.conftest import AuthHarness, bearer

FORM = "application/x-www-form-urlencoded"
KEY_ID = "0123456789abcdef"
SECRET = "a" * 52
KEY = f"gk_{KEY_ID}_{SECRET}"


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.mark.parametrize(
    ("content_type", "body", "authorization"),
    [
        (FORM, f"grant_type=client_credentials&client_id={KEY_ID}&client_secret={SECRET}", None),
        (FORM, "grant_type=client_credentials", basic(KEY_ID, SECRET)),
        (f"{FORM}; charset=UTF-8", "grant_type=client_credentials", basic(KEY_ID, SECRET)),
        ("Application/X-WWW-Form-Urlencoded", "grant_type=client_credentials", basic(KEY_ID, KEY)),
        (FORM, f"grant_type=client_credentials&client_id={KEY_ID}", basic(KEY_ID, SECRET)),
        (FORM, f"grant_type=client_credentials&client_id={KEY_ID}&client_secret={KEY}", None),
        (FORM, "grant_type=client_credentials&scope=&unknown=ignored", basic(KEY_ID, SECRET)),
    ],
)
def test_client_credentials_are_read_from_the_body_or_basic(
    content_type: str, body: str, authorization: str | None
) -> None:
    request = parse_token_request(content_type, body.encode(), authorization)
    assert (request.key_id, request.secret, request.scopes) == (KEY_ID, SECRET, ())
    assert request.basic == (authorization is not None)


def test_scope_is_space_separated_and_basic_values_are_form_decoded() -> None:
    request = parse_token_request(
        FORM,
        b"grant_type=client_credentials&scope=read%3Ajobs+write:jobs",
        basic(KEY_ID, SECRET.replace("a", "%61", 1)),
    )
    assert request.scopes == ("read:jobs", "write:jobs")
    assert request.secret == SECRET


GOOD = f"grant_type=client_credentials&client_id={KEY_ID}&client_secret={SECRET}"
NOT_BASE64 = "Basic not*base64"
NO_COLON = "Basic " + base64.b64encode(b"no-colon").decode()


@pytest.mark.parametrize(
    ("content_type", "body", "authorization", "error", "status", "says"),
    [
        ("application/json", GOOD, None, "invalid_request", 400, "must be application/x-www"),
        (f"{FORM}; charset=latin-1", GOOD, None, "invalid_request", 400, "must be UTF-8"),
        (FORM, "grant_type", None, "invalid_request", 400, "not a form"),
        (FORM, "a=1&" * 40, None, "invalid_request", 400, "at most 32"),
        (FORM, "x=" + "a" * 17000, None, "invalid_request", 400, "at most 16384"),
        (FORM, f"{GOOD}&grant_type=client_credentials", None, "invalid_request", 400, "more than once"),
        (FORM, f"client_id={KEY_ID}&client_secret={SECRET}", None, "invalid_request", 400, "grant_type is required"),
        (FORM, "grant_type=password&username=a&password=b", None, "unsupported_grant_type", 400, "'password'"),
        (FORM, "grant_type=client_credentials", None, "invalid_client", 401, "client authentication is required"),
        (FORM, f"grant_type=client_credentials&client_id={KEY_ID}", None, "invalid_client", 400, "client_secret is required"),
        (FORM, f"grant_type=client_credentials&client_id=KEY&client_secret={SECRET}", None, "invalid_client", 400, "16 hex digits"),
        (FORM, f"grant_type=client_credentials&client_id={KEY_ID}&client_secret=short", None, "invalid_client", 400, "52 characters"),
        (FORM, f"grant_type=client_credentials&client_id={KEY_ID}&client_secret=gk_{'f' * 16}_{SECRET}", None, "invalid_client", 400, "another client_id"),
        (FORM, "grant_type=client_credentials", "Bearer abc", "invalid_client", 401, "not 'Bearer'"),
        (FORM, "grant_type=client_credentials", NOT_BASE64, "invalid_client", 401, "base64(client_id:client_secret)"),
        (FORM, "grant_type=client_credentials", NO_COLON, "invalid_client", 401, "base64(client_id:client_secret)"),
        (FORM, "grant_type=client_credentials", basic("nothex", SECRET), "invalid_client", 401, "16 hex digits"),
        (FORM, f"grant_type=client_credentials&client_secret={SECRET}", basic(KEY_ID, SECRET), "invalid_request", 400, "one client authentication method"),
        (FORM, f"grant_type=client_credentials&client_id={'f' * 16}", basic(KEY_ID, SECRET), "invalid_request", 400, "differs"),
        (FORM, f"{GOOD}&scope=read:jobs%09write:jobs", None, "invalid_scope", 400, "is not one"),
        (FORM, f"{GOOD}&scope=%22quoted%22", None, "invalid_scope", 400, "is not one"),
    ],
)  # fmt: skip
def test_bad_requests_are_refused_with_the_rfc_6749_error(
    content_type: str, body: str, authorization: str | None, error: str, status: int, says: str
) -> None:
    with pytest.raises(OAuth2Error) as caught:
        parse_token_request(content_type, body.encode(), authorization)
    refusal = caught.value
    assert (refusal.error, refusal.status) == (error, status)
    assert refusal.challenge == (status == 401)
    assert says in refusal.description


def test_non_ascii_bytes_in_the_form_are_invalid_request() -> None:
    with pytest.raises(OAuth2Error) as caught:
        parse_token_request(FORM, "grant_type=client_credentials&scope=é".encode(), None)
    assert caught.value.error == "invalid_request"
    assert "percent-encoded UTF-8" in caught.value.description


@pytest.mark.parametrize(
    ("exc", "basic", "error", "status"),
    [
        (Unauthenticated("bad key", reason="invalid_credentials"), False, "invalid_client", 400),
        (Unauthenticated("bad key", reason="invalid_credentials"), True, "invalid_client", 401),
        (InvalidArgument("unknown scope", reason="scope_unknown"), False, "invalid_scope", 400),
        (ResourceExhausted("wait", retry_after_s=3), False, "temporarily_unavailable", 429),
    ],
)
def test_refusals_of_accounts_map_to_rfc_6749_errors(
    exc: Exception, basic: bool, error: str, status: int
) -> None:
    assert isinstance(exc, InvalidArgument | Unauthenticated | ResourceExhausted)
    refusal = refusal_for(exc, basic=basic)
    assert (refusal.error, refusal.status, refusal.challenge) == (error, status, basic)


# In process, over gRPC, the way the edge calls it.


async def _token(
    auth: AuthHarness, body: str, *, authorization: str | None = None
) -> tuple[int, dict[str, str], dict[str, Any]]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{auth.running.port}")
    try:
        call = auth_pb2_grpc.OAuth2ServiceStub(channel).IssueOAuth2Token(
            auth_pb2.IssueOAuth2TokenRequest(
                body=httpbody_pb2.HttpBody(content_type=FORM, data=body.encode())
            ),
            metadata=(("authorization", authorization),) if authorization else None,
        )
        response = await call
        headers = {key: str(value) for key, value in await call.initial_metadata()}
    finally:
        await channel.close()
    assert response.content_type == "application/json"
    return int(headers.pop(STATUS_HEADER)), headers, json.loads(response.data)


def _split(api_key: str) -> tuple[str, str]:
    key_id, secret = api_key.removeprefix("gk_").split("_")
    return key_id, secret


async def test_form_and_basic_get_a_token_in_rfc_6749_form(auth: AuthHarness) -> None:
    key_id, secret = _split(auth.user_key)
    for body, authorization in (
        (f"grant_type=client_credentials&client_id={key_id}&client_secret={secret}", None),
        ("grant_type=client_credentials", basic(key_id, secret)),
    ):
        status, headers, document = await _token(auth, body, authorization=authorization)
        assert status == 200
        assert headers["cache-control"] == "no-store"
        assert headers["pragma"] == "no-cache"
        assert set(document) == {"access_token", "token_type", "expires_in", "scope"}
        assert document["token_type"] == "Bearer"
        assert document["expires_in"] == auth.settings.token_ttl_s
        assert document["scope"] == "read:jobs write:jobs read:models write:webhooks"
        who = await auth.stub.WhoAmI(
            auth_pb2.WhoAmIRequest(), metadata=bearer(document["access_token"])
        )
        assert who.user_id == auth.user_id
        claims = jwt.decode(document["access_token"], options={"verify_signature": False})
        assert claims["api_key_id"] == key_id


async def test_scope_narrows_the_token_and_beyond_the_key_is_invalid_scope(
    auth: AuthHarness,
) -> None:
    key_id, secret = _split(auth.user_key)
    status, _, document = await _token(
        auth, "grant_type=client_credentials&scope=read:jobs", authorization=basic(key_id, secret)
    )
    assert (status, document["scope"]) == (200, "read:jobs")
    who = await auth.stub.WhoAmI(
        auth_pb2.WhoAmIRequest(), metadata=bearer(document["access_token"])
    )
    assert list(who.scopes) == ["read:jobs"]
    for scope, says in (("admin:*", "may not hold scope(s) admin:*"), ("fly", "unknown scope")):
        status, headers, document = await _token(
            auth,
            f"grant_type=client_credentials&scope={scope}",
            authorization=basic(key_id, secret),
        )
        assert (status, document["error"]) == (400, "invalid_scope")
        assert says in document["error_description"]
        assert "www-authenticate" not in headers


async def test_wrong_secret_is_invalid_client_with_a_challenge_for_basic(
    auth: AuthHarness,
) -> None:
    key_id, _ = _split(auth.user_key)
    wrong = "b" * 52
    status, headers, document = await _token(
        auth, "grant_type=client_credentials", authorization=basic(key_id, wrong)
    )
    assert (status, document["error"]) == (401, "invalid_client")
    assert headers["www-authenticate"] == 'Basic realm="gouache", charset="UTF-8"'
    assert "not valid" in document["error_description"]
    status, headers, document = await _token(
        auth, f"grant_type=client_credentials&client_id={'f' * 16}&client_secret={wrong}"
    )
    assert (status, document["error"]) == (400, "invalid_client")
    assert "www-authenticate" not in headers


async def test_repeated_failures_lock_the_client_out_with_retry_after(auth: AuthHarness) -> None:
    key_id, secret = _split(auth.user_key)
    wrong = f"grant_type=client_credentials&client_id={key_id}&client_secret={'b' * 52}"
    for _ in range(auth.settings.max_failed_logins):
        status, _, _ = await _token(auth, wrong)
        assert status == 400
    status, headers, document = await _token(
        auth, "grant_type=client_credentials", authorization=basic(key_id, secret)
    )
    assert (status, document["error"]) == (429, "temporarily_unavailable")
    assert int(headers["retry-after"]) >= 1
    assert "too many failed attempts" in document["error_description"]


async def test_revoked_key_is_invalid_client(auth: AuthHarness) -> None:
    key_id, secret = _split(auth.user_key)
    await auth.stub.RevokeApiKey(
        auth_pb2.RevokeApiKeyRequest(key_id=key_id), metadata=bearer(auth.user_token)
    )
    status, _, document = await _token(
        auth, "grant_type=client_credentials", authorization=basic(key_id, secret)
    )
    assert (status, document["error"]) == (401, "invalid_client")


async def test_json_form_takes_a_space_separated_scope(auth: AuthHarness) -> None:
    response = await auth.stub.IssueToken(
        auth_pb2.IssueTokenRequest(
            grant_type="client_credentials", api_key=auth.user_key, scope="read:jobs read:models"
        )
    )
    assert response.scope == "read:jobs read:models"
