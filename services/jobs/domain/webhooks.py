"""Webhooks: what a subscription may be, the signed payload, and the retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from gouache.runtime.errors import FailedPrecondition, InvalidArgument
from services.jobs.domain.jobs import Job

# batch.finished: once per batch, when its last item becomes final (domain.batches).
WEBHOOK_EVENTS = ("job.succeeded", "job.failed", "job.canceled", "job.running", "batch.finished")
MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 256
MAX_WEBHOOK_URL_CHARS = 2048
MAX_ERROR_CHARS = 500
SIGNATURE_PREFIX = "sha256="


class DeliveryStatus(StrEnum):
    """A delivery waits for its next attempt, got a 2xx, or ran out of attempts."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class Webhook:
    """A user's subscription to events of their jobs."""

    webhook_id: str
    owner_id: str
    url: str
    secret: str
    events: tuple[str, ...]
    created_at: datetime

    def wants(self, event: str) -> bool:
        """Whether this webhook subscribed to event."""
        return event in self.events


def blocked_address(host: str) -> bool:
    """Whether host names this machine or a private network rather than a public receiver.

    Webhooks are POSTed from inside the cluster, so a URL on a loopback, private,
    link-local or reserved address would let a user make the service call internal
    endpoints (server-side request forgery).
    """
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


def validate_webhook(
    url: str, secret: str, events: Sequence[str], *, allow_private: bool = False
) -> tuple[str, tuple[str, ...]]:
    """Checks a new webhook; returns the URL and the events (deduplicated, in order).

    `allow_private` admits receivers on loopback and private addresses (the embedded
    single-machine mode, tests); production leaves it off.
    """
    url = url.strip()
    if not url:
        raise InvalidArgument("url is required: an http(s) URL that accepts POSTs", field="url")
    if len(url) > MAX_WEBHOOK_URL_CHARS:
        raise InvalidArgument(
            f"url is {len(url)} characters; at most {MAX_WEBHOOK_URL_CHARS} are allowed",
            field="url",
        )
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise InvalidArgument(f"url is not a valid URL: {exc}", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(
            f"url must be an http:// or https:// URL with a host, got {url!r}", field="url"
        )
    if any(char.isspace() for char in url):
        raise InvalidArgument("url must not contain spaces", field="url")
    if not allow_private and blocked_address(parts.hostname):
        raise InvalidArgument(
            f"url must reach a public host; {parts.hostname} is a loopback or private address",
            field="url",
            reason="private_address",
        )
    if len(secret) < MIN_SECRET_CHARS:
        raise InvalidArgument(
            f"secret must be at least {MIN_SECRET_CHARS} characters (it signs every delivery); "
            f"got {len(secret)}",
            field="secret",
        )
    if len(secret) > MAX_SECRET_CHARS:
        raise InvalidArgument(
            f"secret is {len(secret)} characters; at most {MAX_SECRET_CHARS} are allowed",
            field="secret",
        )
    if not events:
        raise InvalidArgument(
            f"events needs at least one of {', '.join(WEBHOOK_EVENTS)}", field="events"
        )
    chosen: list[str] = []
    for index, event in enumerate(events):
        name = event.strip().lower()
        if name not in WEBHOOK_EVENTS:
            raise InvalidArgument(
                f"events[{index}] must be one of {', '.join(WEBHOOK_EVENTS)}, got {event!r}",
                field=f"events[{index}]",
            )
        if name not in chosen:
            chosen.append(name)
    return url, tuple(chosen)


def check_webhook_quota(existing: int, limit: int) -> None:
    """A project may hold at most `limit` webhooks."""
    if existing >= limit:
        raise FailedPrecondition(
            f"this project already has {existing} webhooks, the most allowed; delete one with "
            "DeleteWebhook before creating another",
            reason="webhook_limit",
        )


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def delivery_payload(delivery_id: str, event: str, created_at: datetime, job: Job) -> str:
    """The JSON body POSTed for one delivery: the event and a snapshot of the job."""
    return json.dumps(
        {
            "id": delivery_id,
            "event": event,
            "created_at": _timestamp(created_at),
            "job": {
                "job_id": job.job_id,
                "status": job.status.value,
                "model_version": job.model_version,
                "latency_ms": job.latency_ms,
                "result_image_id": job.result_image_id,
                "error": job.error,
                "error_code": job.error_code,
                "cached": job.cached,
            },
        },
        separators=(",", ":"),
    )


def sign(secret: str, timestamp: int, body: str) -> str:
    """The X-Gouache-Signature value: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>.

    Receivers recompute it over the raw body and the X-Gouache-Timestamp header, compare
    in constant time and reject stale timestamps, which stops replays.
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify_signature(secret: str, timestamp: int, body: str, signature: str) -> bool:
    """Whether signature is the one sign() makes (constant-time comparison)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def retry_delay(attempt: int, base_s: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): base, 2·base, 4·base…"""
    return float(base_s * 2 ** max(0, attempt - 1))


@dataclass(frozen=True)
class AttemptOutcome:
    """What one POST got: an HTTP status, or an error before any response."""

    status_code: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        """2xx means the receiver took it; anything else is retried."""
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class DeliveryUpdate:
    """A delivery's bookkeeping after an attempt."""

    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None


def after_attempt(
    attempts_before: int,
    outcome: AttemptOutcome,
    now: datetime,
    *,
    max_attempts: int,
    backoff_base_s: float,
) -> DeliveryUpdate:
    """Delivered on a 2xx; else retried with exponential backoff until max_attempts."""
    attempts = attempts_before + 1
    error = outcome.error
    if error is None and not outcome.delivered:
        error = f"HTTP {outcome.status_code}"
    if error is not None:
        error = error[:MAX_ERROR_CHARS]
    if outcome.delivered:
        return DeliveryUpdate(DeliveryStatus.DELIVERED, attempts, None, outcome.status_code, None)
    if attempts >= max_attempts:
        return DeliveryUpdate(DeliveryStatus.FAILED, attempts, None, outcome.status_code, error)
    next_at = now + timedelta(seconds=retry_delay(attempts, backoff_base_s))
    return DeliveryUpdate(DeliveryStatus.PENDING, attempts, next_at, outcome.status_code, error)
