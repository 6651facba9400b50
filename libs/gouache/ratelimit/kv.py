"""The production LimitStore: a NATS JetStream Key-Value bucket shared by every replica."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from gouache.bus.jetstream import NATS_ERRORS, connect, disconnect
from gouache.ratelimit.limiter import StoreUnavailable
from gouache.ratelimit.plans import KEY_TTL_S

logger = logging.getLogger(__name__)

BUCKET = "gouache_ratelimit"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def kv_key(scope: str, identity: str) -> str:
    """`<scope>.<identity>` with characters NATS keys refuse (and dots) made safe."""
    return f"{scope}.{_UNSAFE.sub(lambda m: f'={ord(m.group()):x}', identity)}"


class NatsKvStore:
    """GCRA states in one KV bucket: memory storage, one value per key, idle keys expire.

    Losing the bucket (a NATS restart) only forgets who spent what: every key starts with
    a full burst again. The connection is opened in the background, so a service starts
    while NATS is away; until it is up, and whenever a call takes longer than
    `op_timeout_s`, the store raises StoreUnavailable and the caller decides.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        bucket: str = BUCKET,
        ttl_s: float = KEY_TTL_S,
        op_timeout_s: float = 0.5,
        replicas: int = 1,
    ) -> None:
        self._url = url
        self._name = name
        self._bucket = bucket
        self._ttl_s = ttl_s
        self._op_timeout_s = op_timeout_s
        self._replicas = replicas
        self._connection: NATS | None = None
        self._kv: KeyValue | None = None
        self._opening: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Starts connecting (and binding the bucket) in the background; returns at once."""
        if self._opening is None:
            self._opening = asyncio.get_running_loop().create_task(self._open())

    async def wait_ready(self, timeout_s: float) -> None:
        """Waits until the bucket is bound (tests, benchmarks)."""
        await self.start()
        assert self._opening is not None
        await asyncio.wait_for(asyncio.shield(self._opening), timeout_s)

    async def stop(self) -> None:
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._opening
        if self._connection is not None:
            await disconnect(self._connection)
        self._connection, self._kv, self._opening = None, None, None

    async def _open(self) -> None:
        # connect() keeps trying until NATS answers; binding retries too, so a bucket that
        # another replica is creating at this moment is found on the next pass.
        self._connection, js = await connect(self._url, name=f"{self._name}-ratelimit")
        while True:
            try:
                try:
                    self._kv = await js.key_value(self._bucket)
                except nats.js.errors.BucketNotFoundError:
                    self._kv = await js.create_key_value(
                        KeyValueConfig(
                            bucket=self._bucket,
                            history=1,
                            ttl=self._ttl_s,
                            storage=StorageType.MEMORY,
                            direct=True,
                            replicas=self._replicas,
                        )
                    )
                logger.info("rate limit store ready", extra={"bucket": self._bucket})
                return
            except NATS_ERRORS as exc:
                logger.warning(
                    "rate limit bucket %s not bound yet: %s: %s",
                    self._bucket,
                    type(exc).__name__,
                    exc,
                )
                await asyncio.sleep(1.0)

    def _ready(self) -> KeyValue:
        if self._kv is None:
            raise StoreUnavailable(f"not connected to NATS at {self._url} yet")
        return self._kv

    async def read(self, key: str) -> tuple[float | None, int]:
        kv = self._ready()
        try:
            entry = await asyncio.wait_for(kv.get(key), self._op_timeout_s)
        except nats.js.errors.KeyDeletedError as deleted:
            return None, deleted.entry.revision if deleted.entry else 0
        except nats.js.errors.KeyNotFoundError:
            return None, 0
        except NATS_ERRORS as exc:
            raise StoreUnavailable(f"reading {key}: {type(exc).__name__}: {exc}") from exc
        if entry.value is None or entry.revision is None:
            return None, entry.revision or 0
        return float(entry.value), entry.revision

    async def write(self, key: str, tat: float, revision: int) -> int | None:
        kv = self._ready()
        value = repr(tat).encode()
        try:
            if revision == 0:
                written = await asyncio.wait_for(kv.create(key, value), self._op_timeout_s)
            else:
                written = await asyncio.wait_for(
                    kv.update(key, value, last=revision), self._op_timeout_s
                )
        except nats.js.errors.KeyWrongLastSequenceError:
            return None
        except NATS_ERRORS as exc:
            raise StoreUnavailable(f"writing {key}: {type(exc).__name__}: {exc}") from exc
        return int(written)
