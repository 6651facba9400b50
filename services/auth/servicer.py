"""AuthService over gRPC: converts messages and delegates to the use cases."""

from __future__ import annotations

from datetime import datetime

import grpc
from google.api import httpbody_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from gouache.contracts.auth.v1 import auth_pb2, auth_pb2_grpc
from gouache.runtime.context import current_principal
from services.auth.domain import Accounts, ApiKeyRecord
from services.auth.keys import KeyRing
from services.auth.oauth2 import answer_token_request
from services.auth.oidc import OidcVerifier

# The response header that carries the HTTP status of an OAuth2 answer: the edge applies it
# and removes it (gouache.edge.oauth2.STATUS_HEADER, which services may not import).
STATUS_HEADER = "x-gouache-http-status"


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _api_key(record: ApiKeyRecord) -> auth_pb2.ApiKey:
    return auth_pb2.ApiKey(
        key_id=record.key_id,
        name=record.name,
        created_at=_timestamp(record.created_at),
        revoked=record.revoked,
    )


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    """One method per RPC; rules live in Accounts and KeyRing."""

    def __init__(self, accounts: Accounts, keys: KeyRing) -> None:
        self._accounts = accounts
        self._keys = keys

    async def IssueToken(
        self, request: auth_pb2.IssueTokenRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.IssueTokenResponse:
        issued = await self._accounts.issue_token(
            request.grant_type,
            api_key=request.api_key,
            email=request.email,
            password=request.password,
            scopes=[*request.scopes, request.scope],
        )
        return auth_pb2.IssueTokenResponse(
            access_token=issued.access_token,
            token_type="Bearer",
            expires_in=issued.expires_in,
            scope=" ".join(issued.scopes),
        )

    async def GetJwks(
        self, request: auth_pb2.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.GetJwksResponse:
        return auth_pb2.GetJwksResponse(
            keys=[auth_pb2.Jwk(**jwk) for jwk in await self._keys.jwks()]
        )

    async def WhoAmI(
        self, request: auth_pb2.WhoAmIRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.WhoAmIResponse:
        principal = current_principal()
        return auth_pb2.WhoAmIResponse(
            user_id=principal.user_id,
            email=principal.email,
            role=principal.role,
            scopes=sorted(principal.scopes),
        )

    async def CreateUser(
        self, request: auth_pb2.CreateUserRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.CreateUserResponse:
        user = await self._accounts.create_user(
            email=request.email, password=request.password, name=request.name, role=request.role
        )
        return auth_pb2.CreateUserResponse(user_id=user.user_id, email=user.email, role=user.role)

    async def CreateApiKey(
        self, request: auth_pb2.CreateApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.CreateApiKeyResponse:
        created = await self._accounts.create_api_key(
            current_principal(), name=request.name, user_id=request.user_id
        )
        return auth_pb2.CreateApiKeyResponse(
            key_id=created.record.key_id,
            api_key=created.api_key,
            name=created.record.name,
            created_at=_timestamp(created.record.created_at),
        )

    async def ListApiKeys(
        self, request: auth_pb2.ListApiKeysRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ListApiKeysResponse:
        records = await self._accounts.list_api_keys(current_principal())
        return auth_pb2.ListApiKeysResponse(keys=[_api_key(record) for record in records])

    async def RevokeApiKey(
        self, request: auth_pb2.RevokeApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RevokeApiKeyResponse:
        await self._accounts.revoke_api_key(current_principal(), request.key_id)
        return auth_pb2.RevokeApiKeyResponse()

    async def DeleteAccount(
        self, request: auth_pb2.DeleteAccountRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.DeleteAccountResponse:
        deleted, keys = await self._accounts.delete_account(request.user_id)
        return auth_pb2.DeleteAccountResponse(deleted=deleted, api_keys_deleted=keys)


class OAuth2Servicer(auth_pb2_grpc.OAuth2ServiceServicer):
    """The RFC 6749 token endpoint: the edge hands it the raw form body (services.auth.oauth2)."""

    def __init__(self, accounts: Accounts, oidc: OidcVerifier | None = None) -> None:
        self._accounts = accounts
        self._oidc = oidc

    async def IssueOAuth2Token(
        self, request: auth_pb2.IssueOAuth2TokenRequest, context: grpc.aio.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        authorization = [
            str(value)
            for key, value in context.invocation_metadata() or ()
            if key.lower() == "authorization"
        ]
        answer = await answer_token_request(
            self._accounts,
            content_type=request.body.content_type,
            body=request.body.data,
            authorization=authorization,
            oidc=self._oidc,
        )
        await context.send_initial_metadata(((STATUS_HEADER, str(answer.status)), *answer.headers))
        return httpbody_pb2.HttpBody(content_type="application/json", data=answer.body)
