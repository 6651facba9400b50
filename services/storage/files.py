"""The plain HTTP server for signed uploads (PUT) and downloads (GET) of /v1/files/{image_id}.

Envoy routes /v1/files/ here without transcoding. Nothing about a request is trusted but
its URL signature or its bearer token: no forwarded headers, no Host, no client address.
Errors have the JSON shape of Envoy's converted gRPC errors: {"code", "message", "details"}.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping

import grpc
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from google.protobuf import json_format

from gouache.runtime.auth import TokenVerifier, bearer_token
from gouache.runtime.context import request_id_var
from gouache.runtime.errors import (
    GouacheError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from services.storage.domain import ImageLibrary, read_capped, too_large
from services.storage.records import ImageRecord
from services.storage.servicer import image_to_proto
from services.storage.urls import is_image_id

logger = logging.getLogger(__name__)

READ_CHUNK_BYTES = 64 * 1024
DOWNLOAD_SCOPE = "read:jobs"
_ALLOWED_METHODS = "GET, HEAD, PUT"
_ERROR_DOMAIN = "gouache.dev"
_ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"

# The canonical gRPC -> HTTP mapping (as Envoy's transcoder applies it).
_HTTP_STATUS: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
# Statuses more precise than the canonical 400, by error reason.
_HTTP_STATUS_BY_REASON: Mapping[str, int] = {
    "too_large": 413,
    "unsupported_format": 415,
    "content_type_mismatch": 415,
    "unsupported_content_type": 415,
    # The image's retention period ended (domain/lifecycle.py): Gone, not Not Found.
    "expired": 410,
}
# gRPC codes for the errors aiohttp raises by itself (no route, bad request line, ...).
_CODE_BY_HTTP_STATUS: Mapping[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.INVALID_ARGUMENT,
}


def error_body(code: grpc.StatusCode, message: str, reason: str | None = None) -> dict[str, object]:
    """{"code": <gRPC code number>, "message": ..., "details": [ErrorInfo]} as Envoy sends it."""
    details: list[dict[str, object]] = []
    if reason:
        details.append({"@type": _ERROR_INFO_TYPE, "reason": reason, "domain": _ERROR_DOMAIN})
    return {"code": code.value[0], "message": message, "details": details}


def error_response(error: GouacheError) -> web.Response:
    """The HTTP answer for a domain error."""
    status = _HTTP_STATUS_BY_REASON.get(error.reason or "") or _HTTP_STATUS.get(error.code, 500)
    response = web.json_response(error_body(error.code, error.message, error.reason), status=status)
    if status == 413:
        # Stop taking the rest of an oversized body on this connection.
        response.force_close()
    return response


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    # The edge's request id (Envoy sets one) goes into every log line of this request.
    request_id_var.set(request.headers.get("X-Request-Id") or uuid.uuid4().hex)
    try:
        return await handler(request)
    except GouacheError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODE_BY_HTTP_STATUS.get(exc.status, grpc.StatusCode.UNKNOWN)
        message = exc.text or exc.reason
        response = web.json_response(error_body(code, message), status=exc.status)
        if exc.status == 405:
            response.headers["Allow"] = _ALLOWED_METHODS
        return response
    except Exception:
        logger.exception("unexpected error serving a file", extra={"path": request.path})
        return web.json_response(
            error_body(grpc.StatusCode.INTERNAL, "internal error; it has been logged"), status=500
        )


class FileServer:
    """aiohttp application and site for /v1/files/{image_id}, started with the gRPC server."""

    def __init__(
        self,
        library: ImageLibrary,
        verifier: TokenVerifier | None,
        *,
        host: str,
        port: int,
        shutdown_timeout_s: float = 10.0,
    ) -> None:
        self._library = library
        self._verifier = verifier
        self._host = host
        self._requested_port = port
        self._shutdown_timeout_s = shutdown_timeout_s
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.app = web.Application(middlewares=[_json_errors])
        self.app.router.add_route("*", "/v1/files/{image_id}", self._dispatch)

    @property
    def base_url(self) -> str:
        """Where this server listens, e.g. http://127.0.0.1:8081."""
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        """Binds host:port (0 = a free port) and starts serving."""
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self._shutdown_timeout_s,
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._requested_port, reuse_port=False)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        logger.info("file server listening", extra={"host": self._host, "port": self.port})

    async def stop(self) -> None:
        """Stops taking connections and waits up to the shutdown timeout for requests in flight."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        image_id = request.match_info["image_id"]
        if request.method == "PUT":
            return await self._upload(request, image_id)
        if request.method in ("GET", "HEAD"):
            return await self._download(request, image_id)
        message = f"{request.method} is not supported on /v1/files/; PUT uploads, GET downloads"
        return web.json_response(
            error_body(grpc.StatusCode.UNIMPLEMENTED, message),
            status=405,
            headers={"Allow": _ALLOWED_METHODS},
        )

    async def _upload(self, request: web.Request, image_id: str) -> web.Response:
        if not is_image_id(image_id):
            raise NotFound(f"no upload at /v1/files/{image_id}; request one with SignUpload")
        reservation = await self._library.check_signed_upload(
            image_id,
            expires=request.query.get("expires"),
            sig=request.query.get("sig"),
            content_type=request.headers.get("Content-Type", ""),
        )
        limit = self._library.limits.max_bytes
        if request.content_length is not None and request.content_length > limit:
            raise too_large(limit)
        try:
            data = await read_capped(request.content.iter_chunked(READ_CHUNK_BYTES), limit)
        except (HttpProcessingError, ConnectionError) as exc:
            logger.info("upload cut off", extra={"image_id": image_id, "error": str(exc)})
            raise InvalidArgument(
                "the upload ended before the whole body arrived; upload the complete file",
                reason="truncated",
            ) from exc
        image = await self._library.complete_signed_upload(reservation, data)
        return web.json_response(
            self._image_json(image),
            status=201,
            headers={"Location": self._library.file_url(image.image_id)},
        )

    async def _download(self, request: web.Request, image_id: str) -> web.StreamResponse:
        if not is_image_id(image_id):
            raise NotFound(f"image {image_id} not found")
        image = await self._authorized_image(request, image_id)
        etag = f'"{image.sha256}"'
        headers = {
            "ETag": etag,
            "Cache-Control": "private, max-age=3600",
            "X-Content-Type-Options": "nosniff",
        }
        if etag in _etags(request.headers.get("If-None-Match", "")):
            return web.Response(status=304, headers=headers)
        chunks = await self._library.open_image(image)
        async with contextlib.aclosing(chunks):
            response = web.StreamResponse(status=200, headers=headers)
            response.content_type = image.content_type
            response.content_length = image.size_bytes
            await response.prepare(request)
            if request.method != "HEAD":
                async for chunk in chunks:
                    await response.write(chunk)
            await response.write_eof()
        return response

    async def _authorized_image(self, request: web.Request, image_id: str) -> ImageRecord:
        """The image a signed URL names, or that the bearer token's user may read."""
        if "sig" in request.query or "expires" in request.query:
            return await self._library.image_for_signed_download(
                image_id, expires=request.query.get("expires"), sig=request.query.get("sig")
            )
        authorization = request.headers.get("Authorization")
        if authorization is None:
            raise Unauthenticated(
                "this download needs a signed URL (SignDownload) or an "
                "'Authorization: Bearer <token>' header"
            )
        if self._verifier is None:
            raise Unavailable("token verification is not configured on this server")
        token = bearer_token([("authorization", authorization)])
        if token is None:
            raise Unauthenticated("authorization header must be 'Bearer <token>'")
        principal = await self._verifier.verify(token)
        if not principal.has_scope(DOWNLOAD_SCOPE):
            raise PermissionDenied(
                f"this download needs the '{DOWNLOAD_SCOPE}' scope; the token has none of it"
            )
        return await self._library.get_image(principal, image_id)

    def _image_json(self, image: ImageRecord) -> dict[str, object]:
        message = image_to_proto(image, self._library.file_url(image.image_id))
        return json_format.MessageToDict(
            message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )


def _etags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}
