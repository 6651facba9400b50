"""The OAuth2 token endpoint (RFC 6749): client credentials from a form body or HTTP Basic,
and answers in the RFC's own JSON, success (§5.1) and error (§5.2) alike.

The edge sends a POST /v1/auth/token whose body is application/x-www-form-urlencoded to
OAuth2Service as the raw body; this module reads it, has Accounts check the API key and
narrow the scopes, and says what to answer: HTTP status, headers and JSON document.
client_id is the API key's id and client_secret its secret: the two halves of
`gk_<key_id>_<secret>` (the whole key is accepted as the secret too). With single sign-on
configured, the JWT bearer grant (RFC 7523) exchanges an external issuer's JWT instead.
An optional `project` parameter (an extension parameter, RFC 6749 §8.2) names the shared
project the token acts in, as IssueToken's `project` does.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote_plus

from gouache.runtime.errors import (
    GouacheError,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    transient_cause,
)
from services.auth.domain import API_KEY_PREFIX, GRANT_CLIENT_CREDENTIALS, Accounts, IssuedToken
from services.auth.oidc import JWT_BEARER_GRANT, OidcVerifier

logger = logging.getLogger(__name__)

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
# Bounds the work one request causes; a real token request is a few hundred bytes.
MAX_BODY_BYTES = 16 * 1024
MAX_PARAMETERS = 32
REALM = "gouache"

_KEY_ID = re.compile(r"[0-9a-f]{16}")
_SECRET = re.compile(r"[a-z2-7]{52}")
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_CLIENT_ID_SHAPE = "client_id is the API key's id: the 16 hex digits of gk_<key_id>_<secret>"
_SECRET_SHAPE = (
    "client_secret is the API key's secret: the 52 characters after gk_<key_id>_ (or the whole key)"
)


class OAuth2Error(Exception):
    """A refusal in RFC 6749 §5.2 terms; `challenge` adds WWW-Authenticate (HTTP Basic)."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        challenge: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.challenge = challenge
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ClientCredentialsRequest:
    """A checked client credentials request: the key's id and secret, the scopes asked for."""

    key_id: str
    secret: str
    scopes: tuple[str, ...]
    basic: bool
    project: str = ""


@dataclass(frozen=True)
class JwtBearerRequest:
    """A JWT bearer grant (RFC 7523 §2.1): an external issuer's JWT, the scopes asked for."""

    assertion: str
    scopes: tuple[str, ...]
    project: str = ""


@dataclass(frozen=True)
class Answer:
    """What the endpoint answers: the HTTP status, extra headers and the JSON document."""

    status: int
    document: dict[str, object]
    headers: tuple[tuple[str, str], ...] = field(default=())

    @property
    def body(self) -> bytes:
        return json.dumps(self.document, separators=(",", ":")).encode()


def _invalid_request(description: str) -> OAuth2Error:
    return OAuth2Error("invalid_request", description)


def _invalid_client(description: str, *, basic: bool) -> OAuth2Error:
    """RFC 6749 §5.2: 401 with a challenge when the client tried the Authorization header."""
    return OAuth2Error("invalid_client", description, status=401 if basic else 400, challenge=basic)


def read_form(content_type: str, body: bytes) -> dict[str, str]:
    """The parameters of a form body, each at most once (RFC 6749 §3.2), or invalid_request."""
    media_type, *parameters = (part.strip() for part in content_type.split(";"))
    if media_type.lower() != FORM_MEDIA_TYPE:
        raise _invalid_request(
            f"the body must be {FORM_MEDIA_TYPE} (RFC 6749 §4.4.2), not {content_type!r}"
        )
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise _invalid_request(f"the form must be UTF-8, not {value.strip()!r}")
    if len(body) > MAX_BODY_BYTES:
        raise _invalid_request(f"the body has {len(body)} bytes; at most {MAX_BODY_BYTES}")
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            errors="strict",
            max_num_fields=MAX_PARAMETERS,
        )
    except UnicodeError:
        raise _invalid_request(
            "the form is not valid: non-ASCII bytes must be percent-encoded UTF-8"
        ) from None
    except ValueError:
        raise _invalid_request(
            f"the body is not a form of name=value pairs joined by '&' "
            f"(at most {MAX_PARAMETERS} of them)"
        ) from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise _invalid_request(f"parameter {name} is given more than once")
        form[name] = value
    return form


def basic_credentials(authorization: str) -> tuple[str, str]:
    """client_id and client_secret from `Basic base64(id:secret)` (RFC 6749 §2.3.1: each
    form-encoded first), or invalid_client with a challenge."""
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise _invalid_client(
            f"the token endpoint takes HTTP Basic client authentication, not {scheme!r}: "
            "send Authorization: Basic base64(client_id:client_secret)",
            basic=True,
        )
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeError):
        decoded = ""
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise _invalid_client(
            "the Basic credentials must be base64(client_id:client_secret)", basic=True
        )
    return unquote_plus(client_id), unquote_plus(secret)


def parse_scope(value: str) -> tuple[str, ...]:
    """The scope tokens of a space-separated scope parameter (RFC 6749 §3.3)."""
    tokens = tuple(token for token in value.split(" ") if token)
    bad = [token for token in tokens if not _SCOPE_TOKEN.fullmatch(token)]
    if bad:
        raise OAuth2Error(
            "invalid_scope",
            f"scope is a space-separated list of scope names; {bad[0]!r} is not one",
        )
    return tokens


def parse_token_request(
    content_type: str, body: bytes, authorization: str | None, *, sso: bool = False
) -> ClientCredentialsRequest | JwtBearerRequest:
    """The token request in a form body and maybe an Authorization header: client
    credentials, or (with sso, when single sign-on is configured) a JWT bearer grant."""
    form = read_form(content_type, body)
    grant_type = form.get("grant_type", "")
    if not grant_type:
        raise _invalid_request(f"grant_type is required: grant_type={GRANT_CLIENT_CREDENTIALS}")
    if grant_type == JWT_BEARER_GRANT and sso:
        return _jwt_bearer(form, authorization)
    if grant_type != GRANT_CLIENT_CREDENTIALS:
        also = f" or {JWT_BEARER_GRANT} (single sign-on)" if sso else ""
        raise OAuth2Error(
            "unsupported_grant_type",
            f"grant_type {grant_type!r} is not supported here; this endpoint issues tokens for "
            f"grant_type={GRANT_CLIENT_CREDENTIALS} (an API key's id and secret){also}",
        )
    return _client_credentials(form, authorization)


def _jwt_bearer(form: dict[str, str], authorization: str | None) -> JwtBearerRequest:
    if authorization is not None or "client_secret" in form:
        raise _invalid_request(
            "the jwt-bearer grant takes the identity provider's JWT as assertion and no "
            "client credentials"
        )
    assertion = form.get("assertion", "")
    if not assertion:
        raise _invalid_request(
            "assertion is required: the JWT your identity provider issued for this audience"
        )
    return JwtBearerRequest(
        assertion=assertion,
        scopes=parse_scope(form.get("scope", "")),
        project=form.get("project", ""),
    )


def _client_credentials(
    form: dict[str, str], authorization: str | None
) -> ClientCredentialsRequest:
    basic = authorization is not None
    if authorization is not None:
        client_id, secret = basic_credentials(authorization)
        if "client_secret" in form:
            raise _invalid_request(
                "use one client authentication method: HTTP Basic or client_id and "
                "client_secret in the body, not both"
            )
        if form.get("client_id", client_id) != client_id:
            raise _invalid_request("client_id in the body differs from the one in HTTP Basic")
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not client_id:
            # No client authentication at all: invite HTTP Basic (RFC 6749 §2.3.1).
            raise OAuth2Error(
                "invalid_client",
                "client authentication is required: HTTP Basic with client_id:client_secret, "
                "or client_id and client_secret in the body",
                status=401,
                challenge=True,
            )
        if not secret:
            raise _invalid_client("client_secret is required: the API key's secret", basic=False)
    if not _KEY_ID.fullmatch(client_id):
        raise _invalid_client(_CLIENT_ID_SHAPE, basic=basic)
    whole_key = f"{API_KEY_PREFIX}{client_id}_"
    if secret.startswith(API_KEY_PREFIX):
        if not secret.startswith(whole_key):
            raise _invalid_client("client_secret is an API key of another client_id", basic=basic)
        secret = secret.removeprefix(whole_key)
    if not _SECRET.fullmatch(secret):
        raise _invalid_client(_SECRET_SHAPE, basic=basic)
    return ClientCredentialsRequest(
        key_id=client_id,
        secret=secret,
        scopes=parse_scope(form.get("scope", "")),
        basic=basic,
        project=form.get("project", ""),
    )


def refusal_for(exc: GouacheError, *, basic: bool) -> OAuth2Error:
    """The RFC 6749 error for what Accounts (or the single sign-on issuer's keys) refused."""
    if exc.reason and exc.reason.startswith("assertion_"):
        return OAuth2Error("invalid_grant", exc.message)
    if exc.reason in ("scope_unknown", "scope_not_allowed"):
        return OAuth2Error("invalid_scope", exc.message)
    if exc.reason and exc.reason.startswith("project_"):
        # A project the client may not act in (not a member, no such project, a malformed
        # id) is invalid_request, "an unsupported parameter value" (RFC 6749 §5.2): the
        # client's credentials are good (not invalid_client) and its scope is not at fault
        # (invalid_scope would send it to fix `scope`); the message names the project.
        return _invalid_request(exc.message)
    if isinstance(exc, Unauthenticated):
        return _invalid_client(exc.message, basic=basic)
    if isinstance(exc, ResourceExhausted):
        # RFC 6749 names no error for a locked-out client; the status and Retry-After do.
        return OAuth2Error(
            "temporarily_unavailable", exc.message, status=429, retry_after_s=exc.retry_after_s
        )
    if isinstance(exc, PermissionDenied):
        return OAuth2Error("unauthorized_client", exc.message)
    if isinstance(exc, InvalidArgument):
        return _invalid_request(exc.message)
    return OAuth2Error("temporarily_unavailable", exc.message, status=503)


_NO_STORE = (("cache-control", "no-store"), ("pragma", "no-cache"))


def token_answer(issued: IssuedToken) -> Answer:
    """RFC 6749 §5.1; the scope is always named, as it may be narrower than the key's."""
    document: dict[str, object] = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": " ".join(issued.scopes),
    }
    return Answer(200, document, _NO_STORE)


def error_answer(refusal: OAuth2Error) -> Answer:
    """RFC 6749 §5.2, with WWW-Authenticate and Retry-After where they apply."""
    headers = list(_NO_STORE)
    if refusal.challenge:
        headers.append(("www-authenticate", f'Basic realm="{REALM}", charset="UTF-8"'))
    if refusal.retry_after_s is not None:
        headers.append(("retry-after", str(max(1, math.ceil(refusal.retry_after_s)))))
    document: dict[str, object] = {
        "error": refusal.error,
        "error_description": refusal.description,
    }
    return Answer(refusal.status, document, tuple(headers))


async def answer_token_request(
    accounts: Accounts,
    *,
    content_type: str,
    body: bytes,
    authorization: Sequence[str],
    oidc: OidcVerifier | None = None,
) -> Answer:
    """The whole exchange: read the request, issue the token or say why not, in RFC form.

    authorization holds the request's Authorization headers (at most one is allowed); oidc,
    when single sign-on is configured, verifies JWT bearer assertions."""
    try:
        if len(authorization) > 1:
            raise _invalid_client("send one Authorization header", basic=True)
        request = parse_token_request(
            content_type, body, authorization[0] if authorization else None, sso=oidc is not None
        )
        try:
            if isinstance(request, JwtBearerRequest):
                assert oidc is not None
                identity = await oidc.verify(request.assertion)
                issued = await accounts.federated_token(
                    identity.email,
                    identity.name,
                    request.scopes,
                    create=oidc.config.create_users,
                    project=request.project,
                )
            else:
                issued = await accounts.issue_client_token(
                    request.key_id, request.secret, request.scopes, project=request.project
                )
        except GouacheError as exc:
            basic = isinstance(request, ClientCredentialsRequest) and request.basic
            raise refusal_for(exc, basic=basic) from exc
        return token_answer(issued)
    except OAuth2Error as refusal:
        logger.info(
            "oauth2 token refused", extra={"error": refusal.error, "status": refusal.status}
        )
        return error_answer(refusal)
    except Exception as exc:
        transient = transient_cause(exc)
        if transient is None:
            logger.exception("unexpected error at the oauth2 token endpoint")
            return error_answer(
                OAuth2Error("server_error", "internal error; it has been logged", status=500)
            )
        logger.warning("backend unavailable at the oauth2 token endpoint: %s", exc)
        return error_answer(OAuth2Error("temporarily_unavailable", transient.message, status=503))
