"""AuthService in process: every RPC, good and bad input, against its own signing keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import jwt
import pytest
from google.protobuf import json_format
from jwt.algorithms import OKPAlgorithm

from gouache.contracts.auth.v1 import auth_pb2
from gouache.runtime.errors import FailedPrecondition, InvalidArgument
from services.auth.bootstrap import ensure_service_account
from services.auth.domain import User, new_api_key
from services.auth.server import open_components
from tests.helpers.tokens import TestSigner
from tests.unit.auth.conftest import (
    ADMIN_EMAIL,
    USER_EMAIL,
    USER_PASSWORD,
    AuthHarness,
    bearer,
)


async def _fails(call: object, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    details = caught.value.details() or ""
    assert details
    return details


async def _mint(auth: AuthHarness, user: User, *, at: datetime | None = None) -> str:
    """A token signed with the service's own key, as if issued at `at`."""
    parts = open_components(auth.settings, clock=lambda: at or datetime.now(UTC))
    try:
        await parts.keys.reload()
        return (await parts.accounts.token_for(user)).access_token
    finally:
        await parts.database.close()


async def _jwks(auth: AuthHarness) -> dict[str, Any]:
    response = await auth.stub.GetJwks(auth_pb2.GetJwksRequest())
    return {
        key.kid: OKPAlgorithm.from_jwk(
            json_format.MessageToDict(key, preserving_proto_field_name=True)
        )
        for key in response.keys
    }


async def test_client_credentials_token_has_the_documented_claims(auth: AuthHarness) -> None:
    response = await auth.stub.IssueToken(
        auth_pb2.IssueTokenRequest(grant_type="client_credentials", api_key=auth.user_key)
    )
    assert response.token_type == "Bearer"
    assert response.expires_in == 900
    assert response.scope == "read:jobs write:jobs read:models write:webhooks"
    header = jwt.get_unverified_header(response.access_token)
    assert header["alg"] == "EdDSA"
    keys = await _jwks(auth)
    claims = jwt.decode(
        response.access_token,
        keys[header["kid"]],
        algorithms=["EdDSA"],
        audience="gouache",
        issuer="gouache-auth",
    )
    assert claims["sub"] == auth.user_id
    assert claims["role"] == "user"
    assert claims["email"] == USER_EMAIL
    assert claims["scope"] == response.scope
    assert claims["exp"] - claims["iat"] == 900
    assert claims["jti"]


async def test_jwks_is_public_and_has_no_private_parts(auth: AuthHarness) -> None:
    response = await auth.stub.GetJwks(auth_pb2.GetJwksRequest())
    assert len(response.keys) == 1
    key = response.keys[0]
    assert (key.kty, key.crv, key.alg, key.use) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert key.kid
    assert key.x
    assert "d" not in json_format.MessageToDict(key)


async def test_password_grant_and_who_am_i(auth: AuthHarness) -> None:
    me = await auth.stub.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=bearer(auth.user_token))
    assert me.user_id == auth.user_id
    assert me.email == USER_EMAIL
    assert me.role == "user"
    assert set(me.scopes) == {"read:jobs", "write:jobs", "read:models", "write:webhooks"}


async def test_email_is_matched_case_insensitively(auth: AuthHarness) -> None:
    response = await auth.stub.IssueToken(
        auth_pb2.IssueTokenRequest(
            grant_type="password", email=USER_EMAIL.upper(), password=USER_PASSWORD
        )
    )
    assert response.access_token


async def test_requested_scopes_narrow_the_token(auth: AuthHarness) -> None:
    token = await auth.token(auth.user_key, "read:jobs")
    me = await auth.stub.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=bearer(token))
    assert list(me.scopes) == ["read:jobs"]


async def test_scope_beyond_the_role_is_permission_denied(auth: AuthHarness) -> None:
    details = await _fails(
        auth.token(auth.user_key, "read:jobs", "admin:*"), grpc.StatusCode.PERMISSION_DENIED
    )
    assert "admin:*" in details


async def test_unknown_scope_is_invalid_argument(auth: AuthHarness) -> None:
    details = await _fails(auth.token(auth.user_key, "root"), grpc.StatusCode.INVALID_ARGUMENT)
    assert "root" in details


async def test_unknown_grant_type_is_invalid_argument(auth: AuthHarness) -> None:
    details = await _fails(
        auth.stub.IssueToken(auth_pb2.IssueTokenRequest(grant_type="authorization_code")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "client_credentials" in details
    assert "password" in details


async def test_missing_credentials_are_invalid_argument(auth: AuthHarness) -> None:
    await _fails(
        auth.stub.IssueToken(auth_pb2.IssueTokenRequest(grant_type="client_credentials")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await _fails(
        auth.stub.IssueToken(auth_pb2.IssueTokenRequest(grant_type="password", email=USER_EMAIL)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_malformed_api_key_is_invalid_argument(auth: AuthHarness) -> None:
    details = await _fails(auth.token("gk_nonsense"), grpc.StatusCode.INVALID_ARGUMENT)
    assert "gk_<key_id>_<secret>" in details


async def test_wrong_and_unknown_keys_get_the_same_answer(auth: AuthHarness) -> None:
    key_id = auth.user_key.split("_")[1]
    wrong_secret = f"gk_{key_id}_{new_api_key().secret}"
    unknown = new_api_key().text
    first = await _fails(auth.token(wrong_secret), grpc.StatusCode.UNAUTHENTICATED)
    second = await _fails(auth.token(unknown), grpc.StatusCode.UNAUTHENTICATED)
    assert first == second


async def test_wrong_password_and_unknown_email_get_the_same_answer(auth: AuthHarness) -> None:
    def login(email: str, password: str) -> object:
        return auth.stub.IssueToken(
            auth_pb2.IssueTokenRequest(grant_type="password", email=email, password=password)
        )

    first = await _fails(
        login(USER_EMAIL, "not the password at all"), grpc.StatusCode.UNAUTHENTICATED
    )
    second = await _fails(
        login("nobody@example.com", USER_PASSWORD), grpc.StatusCode.UNAUTHENTICATED
    )
    third = await _fails(login(ADMIN_EMAIL, USER_PASSWORD), grpc.StatusCode.UNAUTHENTICATED)
    assert first == second == third == "wrong email or password"


async def test_repeated_failures_are_throttled(auth: AuthHarness) -> None:
    key_id = auth.user_key.split("_")[1]
    wrong = f"gk_{key_id}_{new_api_key().secret}"
    for _ in range(3):
        await _fails(auth.token(wrong), grpc.StatusCode.UNAUTHENTICATED)
    details = await _fails(auth.token(wrong), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert "retry in" in details
    # The lockout is per credential: the right key is refused too, other keys are not.
    await _fails(auth.token(auth.user_key), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert await auth.token(auth.admin_key)


async def test_revoked_key_is_refused(auth: AuthHarness) -> None:
    key_id = auth.user_key.split("_")[1]
    await auth.stub.RevokeApiKey(
        auth_pb2.RevokeApiKeyRequest(key_id=key_id), metadata=bearer(auth.user_token)
    )
    details = await _fails(auth.token(auth.user_key), grpc.StatusCode.UNAUTHENTICATED)
    assert "revoked" in details
    listed = await auth.stub.ListApiKeys(
        auth_pb2.ListApiKeysRequest(), metadata=bearer(auth.user_token)
    )
    assert [(k.key_id, k.revoked) for k in listed.keys] == [(key_id, True)]
    # Revoking again is harmless.
    await auth.stub.RevokeApiKey(
        auth_pb2.RevokeApiKeyRequest(key_id=key_id), metadata=bearer(auth.user_token)
    )


async def test_expired_token_is_refused(auth: AuthHarness) -> None:
    user = User(auth.user_id, USER_EMAIL, "", "user", None, datetime.now(UTC))
    expired = await _mint(auth, user, at=datetime.now(UTC) - timedelta(hours=1))
    details = await _fails(
        auth.stub.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=bearer(expired)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert "expired" in details


async def test_forged_token_is_refused(auth: AuthHarness) -> None:
    kid = jwt.get_unverified_header(auth.user_token)["kid"]
    forged = TestSigner(kid=kid).token(auth.user_id, role="admin", scopes=("admin:*",))
    await _fails(
        auth.stub.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=bearer(forged)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    await _fails(
        auth.stub.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=bearer(TestSigner().token())),
        grpc.StatusCode.UNAUTHENTICATED,
    )


async def test_who_am_i_needs_a_token(auth: AuthHarness) -> None:
    await _fails(auth.stub.WhoAmI(auth_pb2.WhoAmIRequest()), grpc.StatusCode.UNAUTHENTICATED)


async def test_admin_creates_users_and_duplicates_are_refused(auth: AuthHarness) -> None:
    created = await auth.stub.CreateUser(
        auth_pb2.CreateUserRequest(
            email=" New.Admin@Example.com", password="x" * 12, name="N", role="admin"
        ),
        metadata=bearer(auth.admin_token),
    )
    assert created.user_id.startswith("usr_")
    assert (created.email, created.role) == ("new.admin@example.com", "admin")
    await _fails(
        auth.stub.CreateUser(
            auth_pb2.CreateUserRequest(email="new.admin@example.com", password="y" * 12),
            metadata=bearer(auth.admin_token),
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )


@pytest.mark.parametrize(
    ("request_fields", "needle"),
    [
        ({"email": "not-an-email", "password": "x" * 12}, "email"),
        ({"email": "", "password": "x" * 12}, "email"),
        ({"email": "short@example.com", "password": "x" * 11}, "12"),
        ({"email": "role@example.com", "password": "x" * 12, "role": "service"}, "role"),
        ({"email": "role@example.com", "password": "x" * 12, "role": "operator"}, "role"),
        ({"email": "name@example.com", "password": "x" * 12, "name": "n" * 201}, "name"),
    ],
)
async def test_create_user_bad_input(
    auth: AuthHarness, request_fields: dict[str, str], needle: str
) -> None:
    details = await _fails(
        auth.stub.CreateUser(
            auth_pb2.CreateUserRequest(**request_fields), metadata=bearer(auth.admin_token)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert needle in details


async def test_create_user_needs_admin(auth: AuthHarness) -> None:
    details = await _fails(
        auth.stub.CreateUser(
            auth_pb2.CreateUserRequest(email="x@example.com", password="x" * 12),
            metadata=bearer(auth.user_token),
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "admin:*" in details
    # An admin token narrowed to other scopes is not enough either.
    narrowed = await auth.token(auth.admin_key, "read:jobs")
    await _fails(
        auth.stub.CreateUser(
            auth_pb2.CreateUserRequest(email="x@example.com", password="x" * 12),
            metadata=bearer(narrowed),
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_api_keys_are_listed_per_user_without_secrets(auth: AuthHarness) -> None:
    second = await auth.stub.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="ci"), metadata=bearer(auth.user_token)
    )
    assert second.api_key.startswith(f"gk_{second.key_id}_")
    assert second.name == "ci"
    listed = await auth.stub.ListApiKeys(
        auth_pb2.ListApiKeysRequest(), metadata=bearer(auth.user_token)
    )
    assert [k.name for k in listed.keys] == ["laptop", "ci"]
    assert not any(k.revoked for k in listed.keys)
    admin_keys = await auth.stub.ListApiKeys(
        auth_pb2.ListApiKeysRequest(), metadata=bearer(auth.admin_token)
    )
    assert {k.key_id for k in admin_keys.keys}.isdisjoint({k.key_id for k in listed.keys})
    assert await auth.token(second.api_key)


async def test_admin_may_create_a_key_for_another_user(auth: AuthHarness) -> None:
    created = await auth.stub.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="for user", user_id=auth.user_id),
        metadata=bearer(auth.admin_token),
    )
    token = await auth.token(created.api_key)
    me = await auth.stub.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=bearer(token))
    assert me.user_id == auth.user_id


async def test_user_may_not_create_a_key_for_another_user(auth: AuthHarness) -> None:
    admin = await auth.stub.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=bearer(auth.admin_token))
    details = await _fails(
        auth.stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="x", user_id=admin.user_id),
            metadata=bearer(auth.user_token),
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "admins" in details


async def test_key_for_unknown_user_is_not_found(auth: AuthHarness) -> None:
    await _fails(
        auth.stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="x", user_id="usr_nobody"),
            metadata=bearer(auth.admin_token),
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    ghost = User("usr_ghost", "ghost@example.com", "", "user", None, datetime.now(UTC))
    details = await _fails(
        auth.stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="x"), metadata=bearer(await _mint(auth, ghost))
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert "usr_ghost" in details


async def test_key_name_too_long_is_invalid_argument(auth: AuthHarness) -> None:
    details = await _fails(
        auth.stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="n" * 101), metadata=bearer(auth.user_token)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "name" in details


@pytest.mark.parametrize("name", ["nul\x00", "line\nbreak", "bell\x07"])
async def test_key_name_with_a_control_character_is_invalid_argument(
    auth: AuthHarness, name: str
) -> None:
    """Found by schemathesis: a NUL in the name was a 500 on PostgreSQL."""
    details = await _fails(
        auth.stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name=name), metadata=bearer(auth.user_token)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "printable text" in details


async def test_another_users_key_cannot_be_revoked(auth: AuthHarness) -> None:
    admin_key_id = auth.admin_key.split("_")[1]
    details = await _fails(
        auth.stub.RevokeApiKey(
            auth_pb2.RevokeApiKeyRequest(key_id=admin_key_id), metadata=bearer(auth.user_token)
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert admin_key_id in details
    assert await auth.token(auth.admin_key)
    await _fails(
        auth.stub.RevokeApiKey(
            auth_pb2.RevokeApiKeyRequest(key_id="0000000000000000"),
            metadata=bearer(auth.user_token),
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    await _fails(
        auth.stub.RevokeApiKey(auth_pb2.RevokeApiKeyRequest(), metadata=bearer(auth.user_token)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_admin_may_revoke_any_key(auth: AuthHarness) -> None:
    await auth.stub.RevokeApiKey(
        auth_pb2.RevokeApiKeyRequest(key_id=auth.user_key.split("_")[1]),
        metadata=bearer(auth.admin_token),
    )
    await _fails(auth.token(auth.user_key), grpc.StatusCode.UNAUTHENTICATED)


async def test_operator_account_gets_model_scopes_only(auth: AuthHarness) -> None:
    key = await ensure_service_account(auth.settings, "operator", role="operator")
    token = await auth.token(key)
    me = await auth.stub.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=bearer(token))
    assert (me.role, list(me.scopes)) == ("operator", ["read:models", "write:models"])
    assert me.email == "operator@services.gouache.internal"
    narrowed = await auth.token(key, "write:models")
    me = await auth.stub.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=bearer(narrowed))
    assert list(me.scopes) == ["write:models"]
    details = await _fails(auth.token(key, "read:jobs"), grpc.StatusCode.PERMISSION_DENIED)
    assert "read:jobs" in details
    # Nor may the operator make users: CreateUser needs admin:*.
    await _fails(
        auth.stub.CreateUser(
            auth_pb2.CreateUserRequest(email="x@example.com", password="x" * 12),
            metadata=bearer(token),
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_admin_tokens_hold_write_models(auth: AuthHarness) -> None:
    me = await auth.stub.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=bearer(auth.admin_token))
    assert "write:models" in me.scopes
    details = await _fails(
        auth.token(auth.user_key, "write:models"), grpc.StatusCode.PERMISSION_DENIED
    )
    assert "write:models" in details


async def test_bootstrap_account_roles_are_checked(auth: AuthHarness) -> None:
    with pytest.raises(InvalidArgument):
        await ensure_service_account(auth.settings, "operator", role="admin")
    await ensure_service_account(auth.settings, "canary", role="operator")
    # One account keeps one role.
    with pytest.raises(FailedPrecondition):
        await ensure_service_account(auth.settings, "canary")
