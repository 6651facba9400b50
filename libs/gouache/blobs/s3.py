"""A BlobStore on S3 or MinIO (the `minio` client), for production deployments."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import io
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, TypeVar, cast

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error
from urllib3.response import BaseHTTPResponse

from gouache.blobs.base import (
    DEFAULT_CHUNK_BYTES,
    BlobNotFound,
    BlobStoreMisconfigured,
    BlobUnavailable,
    validate_key,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# S3 refuses multipart parts under 5 MiB (except the last). A put holds one part in memory,
# so this is also what one streamed put costs; objects up to this size go in one PUT.
MIN_PART_BYTES = 5 * 1024 * 1024
DEFAULT_PART_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_WORKERS = 16
DEFAULT_TIMEOUT_S = 30.0
# Connection errors and 5xx answers are retried this many times (idempotent requests only).
RETRIES = 2

# Answers that mean the store is there but will not serve this service as configured.
_REFUSALS = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "NoSuchBucket",
        "AllAccessDisabled",
        "AccountProblem",
        "InvalidBucketName",
        "XMinioServerNotInitialized",
    }
)
_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchObject"})


class _PutAborted(Exception):
    """Raised inside the upload thread when the caller's put was cancelled."""


class _SourceFailed(Exception):
    """Carries an exception of the caller's chunk iterator through the client, unchanged."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


class S3BlobStore:
    """Objects in one S3 bucket, one object per key; the blocking client runs in a thread pool.

    `put` is atomic as S3 makes it: an object up to `part_bytes` is one PUT, a larger one a
    multipart upload that becomes visible only when completed and is aborted when the
    writer fails or is cancelled, so a reader never sees a partial object. Streamed puts
    hold at most one part in memory; reads stream the response in chunks. The pool bounds
    how many requests run at once (`max_workers`). Network failures, 5xx answers after
    retries, and refusals (credentials, missing bucket) raise `BlobUnavailable`, naming the
    endpoint and bucket; the content type is stored as the object's Content-Type.
    """

    def __init__(
        self,
        client: Minio,
        bucket: str,
        *,
        endpoint: str,
        max_workers: int = DEFAULT_MAX_WORKERS,
        part_bytes: int = DEFAULT_PART_BYTES,
        http: urllib3.PoolManager | None = None,
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES} (the S3 minimum)")
        if max_workers <= 0:
            raise ValueError(f"max_workers must be positive, got {max_workers}")
        self.bucket = bucket
        self.endpoint = endpoint
        self.part_bytes = part_bytes
        self._client = client
        self._http = http
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="s3-blobs")

    @classmethod
    def connect(
        cls,
        endpoint: str,
        *,
        bucket: str,
        access_key: str,
        secret_key: str,
        secure: bool = True,
        region: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_workers: int = DEFAULT_MAX_WORKERS,
        part_bytes: int = DEFAULT_PART_BYTES,
    ) -> S3BlobStore:
        """A store for `bucket` at endpoint ("host:port"); nothing is sent until the first call.

        Requests time out after `timeout_s` (connecting: at most 5 s) and are retried
        twice on connection errors and 5xx answers, so an unreachable endpoint fails in
        about a second rather than the client's default minutes.
        """
        http = urllib3.PoolManager(
            num_pools=4,
            maxsize=max_workers,
            timeout=urllib3.Timeout(connect=min(5.0, timeout_s), read=timeout_s),
            # MinIO answers 503 with "Retry-After: 60" while it initialises; honouring it
            # would hold a request (and a worker) for minutes, so only the backoff applies.
            retries=urllib3.Retry(
                total=RETRIES,
                backoff_factor=0.2,
                status_forcelist=(500, 502, 503, 504),
                respect_retry_after_header=False,
            ),
        )
        client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region or None,
            http_client=http,
        )
        return cls(
            client,
            bucket,
            endpoint=endpoint,
            max_workers=max_workers,
            part_bytes=part_bytes,
            http=http,
        )

    # --- lifecycle ----------------------------------------------------------------------

    async def ensure_bucket(self, *, create: bool = False, region: str | None = None) -> bool:
        """Checks that the bucket exists and the credentials may use it; True if it was made.

        Raises BlobStoreMisconfigured when the bucket is missing and `create` is false,
        BlobUnavailable when the endpoint cannot be reached or refuses the credentials.
        """
        if await self._call("look up", "", self._client.bucket_exists, self.bucket):
            return False
        if not create:
            raise BlobStoreMisconfigured(
                f"bucket {self.bucket!r} does not exist at {self.endpoint}"
            )
        try:
            await self._call("create", "", self._client.make_bucket, self.bucket, region or None)
        except BlobUnavailable as exc:
            # Another replica may have created it meanwhile.
            if not isinstance(exc.__cause__, S3Error) or exc.__cause__.code not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise
            return False
        logger.info("bucket created", extra={"bucket": self.bucket, "endpoint": self.endpoint})
        return True

    async def close(self) -> None:
        """Stops the worker threads (after the calls in flight) and closes the connections."""
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        if self._http is not None:
            self._http.clear()

    # --- the BlobStore interface --------------------------------------------------------

    async def put(self, key: str, data: bytes | AsyncIterator[bytes], content_type: str) -> None:
        """Stores data atomically under key (see the class docstring)."""
        validate_key(key)
        if isinstance(data, bytes | bytearray | memoryview):
            payload = bytes(data)
            await self._call(
                "store",
                key,
                self._client.put_object,
                self.bucket,
                key,
                io.BytesIO(payload),
                len(payload),
                content_type=content_type,
                part_size=self.part_bytes,
                num_parallel_uploads=1,
            )
            return
        reader = _ChunkReader(data, asyncio.get_running_loop())
        upload = functools.partial(
            self._client.put_object,
            self.bucket,
            key,
            cast(BinaryIO, reader),
            -1,
            content_type=content_type,
            part_size=self.part_bytes,
            num_parallel_uploads=1,
        )
        done = asyncio.wrap_future(self._executor.submit(self._translated, "store", key, upload))
        try:
            await asyncio.shield(done)
        except _SourceFailed as exc:
            # The chunks' own error (the multipart upload, if any, is aborted by now).
            raise exc.original from None
        except asyncio.CancelledError:
            # Make the upload thread give up (aborting a multipart upload) before returning,
            # so no object appears after the caller was told the put was cancelled.
            reader.abort()
            with contextlib.suppress(Exception):
                await done
            raise

    async def get(self, key: str) -> bytes:
        """Returns the whole object; raises BlobNotFound."""
        validate_key(key)
        return await self._call("read", key, self._read_all, key)

    async def open(
        self, key: str, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES
    ) -> AsyncIterator[bytes]:
        """Starts the GET now (BlobNotFound is raised here) and returns its body in chunks.

        One GET serves the whole read, so the chunks all come from one version of the
        object even if it is replaced meanwhile.
        """
        if chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        validate_key(key)
        response = await self._call("read", key, self._client.get_object, self.bucket, key)
        return self._chunks(key, response, chunk_bytes)

    async def exists(self, key: str) -> bool:
        """Says whether an object is stored under key."""
        validate_key(key)
        try:
            await self._call("look up", key, self._client.stat_object, self.bucket, key)
        except BlobNotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        """Removes the object; a missing key is not an error."""
        validate_key(key)
        await self._call("delete", key, self._client.remove_object, self.bucket, key)

    # --- helpers ------------------------------------------------------------------------

    def _read_all(self, key: str) -> bytes:
        response = self._client.get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    async def _chunks(
        self, key: str, response: BaseHTTPResponse, chunk_bytes: int
    ) -> AsyncIterator[bytes]:
        try:
            while True:
                chunk = await self._call("read", key, response.read, chunk_bytes)
                if not chunk:
                    return
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def _call(
        self, action: str, key: str, fn: Callable[..., T], *args: object, **kwargs: object
    ) -> T:
        """Runs a blocking client call in the pool, with the store's errors translated."""
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args, **kwargs)
        return await loop.run_in_executor(self._executor, self._translated, action, key, call)

    def _translated(self, action: str, key: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except S3Error as exc:
            if exc.code in _NOT_FOUND and key:
                raise BlobNotFound(key) from exc
            if exc.code in _REFUSALS:
                raise BlobUnavailable(
                    f"the object store at {self.endpoint} refused to {action} "
                    f"{self._what(key)}: {exc.code}: {exc.message}"
                ) from exc
            raise
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise BlobUnavailable(
                f"the object store at {self.endpoint} is unavailable: could not {action} "
                f"{self._what(key)} ({_reason(exc)})"
            ) from exc

    def _what(self, key: str) -> str:
        return f"{key!r} in bucket {self.bucket!r}" if key else f"bucket {self.bucket!r}"


def _reason(exc: BaseException) -> str:
    """The innermost cause of a connection error, e.g. 'Connection refused'."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return str(exc).rsplit(": ", 1)[-1]
    return f"{type(exc).__name__}: {exc}"


class _ChunkReader:
    """A blocking `read()` over an async iterator, for the client's upload thread.

    Each read pulls chunks from the event loop until it has `size` bytes or the iterator
    ends, so the client reads a whole part in one call; only what it asked for is kept.
    """

    def __init__(self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._chunks = chunks
        self._loop = loop
        self._buffer = bytearray()
        self._ended = False
        self._aborted = threading.Event()
        self._pending: concurrent.futures.Future[bytes | None] | None = None

    def read(self, size: int | None = -1) -> bytes:
        want = -1 if size is None else size
        while not self._ended and (want < 0 or len(self._buffer) < want):
            chunk = self._next_chunk()
            if chunk is None:
                self._ended = True
            else:
                self._buffer += chunk
        count = len(self._buffer) if want < 0 else min(want, len(self._buffer))
        out = bytes(self._buffer[:count])
        del self._buffer[:count]
        return out

    def abort(self) -> None:
        """Makes the current and every later read fail (called from the event loop)."""
        self._aborted.set()
        pending = self._pending
        if pending is not None:
            pending.cancel()

    def _next_chunk(self) -> bytes | None:
        if self._aborted.is_set():
            raise _PutAborted("the put was cancelled")
        pending = asyncio.run_coroutine_threadsafe(_anext_or_none(self._chunks), self._loop)
        self._pending = pending
        if self._aborted.is_set():
            pending.cancel()
        try:
            return pending.result()
        except concurrent.futures.CancelledError as exc:
            raise _PutAborted("the put was cancelled") from exc
        except BaseException as exc:
            raise _SourceFailed(exc) from exc
        finally:
            self._pending = None


async def _anext_or_none(chunks: AsyncIterator[bytes]) -> bytes | None:
    try:
        return bytes(await anext(chunks))
    except StopAsyncIteration:
        return None
