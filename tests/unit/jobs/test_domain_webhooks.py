"""Webhooks: subscription validation, quota, payload, signature and the retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from gouache.runtime.errors import FailedPrecondition, InvalidArgument
from services.jobs.domain.jobs import ExecutionSucceeded, apply_execution
from services.jobs.domain.webhooks import (
    AttemptOutcome,
    DeliveryStatus,
    after_attempt,
    check_webhook_quota,
    delivery_payload,
    retry_delay,
    sign,
    validate_webhook,
    verify_signature,
)
from tests.unit.jobs.test_domain_jobs import CREATED, make_job

SECRET = "s" * 16
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def test_valid_webhook_is_normalized() -> None:
    url, events = validate_webhook(
        " https://example.com/hook ", SECRET, ["job.succeeded", "JOB.FAILED", "job.succeeded"]
    )
    assert url == "https://example.com/hook"
    assert events == ("job.succeeded", "job.failed")


@pytest.mark.parametrize(
    ("url", "secret", "events", "field", "message"),
    [
        ("", SECRET, ["job.failed"], "url", "required"),
        ("ftp://example.com/x", SECRET, ["job.failed"], "url", "http:// or https://"),
        ("https:///path", SECRET, ["job.failed"], "url", "with a host"),
        ("not a url", SECRET, ["job.failed"], "url", "http:// or https://"),
        ("http://example.com:99999/", SECRET, ["job.failed"], "url", "not a valid URL"),
        ("http://example.com/" + "a" * 2100, SECRET, ["job.failed"], "url", "at most 2048"),
        ("https://example.com", "short", ["job.failed"], "secret", "at least 16 characters"),
        ("https://example.com", "x" * 300, ["job.failed"], "secret", "at most 256"),
        ("https://example.com", SECRET, [], "events", "at least one"),
        ("https://example.com", SECRET, ["job.failed", "job.done"], "events[1]", "'job.done'"),
    ],
)
def test_bad_webhooks(url: str, secret: str, events: list[str], field: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as caught:
        validate_webhook(url, secret, events)
    assert caught.value.field == field


def test_quota() -> None:
    check_webhook_quota(9, 10)
    with pytest.raises(FailedPrecondition, match="delete one"):
        check_webhook_quota(10, 10)


def test_payload_carries_the_job_snapshot() -> None:
    change = apply_execution(
        make_job(), ExecutionSucceeded(result_image_id="img_r"), CREATED + timedelta(seconds=2)
    )
    assert change is not None
    body = delivery_payload("dlv_1", "job.succeeded", NOW, change.job)
    data = json.loads(body)
    assert data["id"] == "dlv_1"
    assert data["event"] == "job.succeeded"
    assert data["created_at"] == "2025-01-01T00:00:00.000Z"
    assert data["job"] == {
        "job_id": change.job.job_id,
        "status": "succeeded",
        "model_version": "gatys.lite0-v1",
        "latency_ms": 2000,
        "result_image_id": "img_r",
        "error": None,
        "error_code": None,
        "cached": False,
    }


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = '{"a":1}'
    expected = hmac.new(SECRET.encode(), b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, body) == f"sha256={expected}"
    assert verify_signature(SECRET, 1700000000, body, f"sha256={expected}")
    assert not verify_signature(SECRET, 1700000001, body, f"sha256={expected}")
    assert not verify_signature("t" * 16, 1700000000, body, f"sha256={expected}")


def test_retry_delays_double() -> None:
    assert [retry_delay(n, 1.0) for n in range(1, 6)] == [1, 2, 4, 8, 16]


def test_delivered_on_2xx() -> None:
    update = after_attempt(0, AttemptOutcome(204), NOW, max_attempts=6, backoff_base_s=1)
    assert update.status is DeliveryStatus.DELIVERED
    assert update.attempts == 1
    assert update.last_status_code == 204
    assert update.next_attempt_at is None


@pytest.mark.parametrize(
    "outcome", [AttemptOutcome(500), AttemptOutcome(302), AttemptOutcome(error="timeout")]
)
def test_failure_is_retried_with_backoff(outcome: AttemptOutcome) -> None:
    update = after_attempt(2, outcome, NOW, max_attempts=6, backoff_base_s=1)
    assert update.status is DeliveryStatus.PENDING
    assert update.attempts == 3
    assert update.next_attempt_at == NOW + timedelta(seconds=4)
    assert update.last_error


def test_last_attempt_fails_the_delivery() -> None:
    update = after_attempt(5, AttemptOutcome(503), NOW, max_attempts=6, backoff_base_s=1)
    assert update.status is DeliveryStatus.FAILED
    assert update.attempts == 6
    assert update.last_error == "HTTP 503"
    assert update.next_attempt_at is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://api.localhost/hook",
        "http://10.0.0.5/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_private_and_loopback_receivers_are_refused(url: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_webhook(url, "s" * 16, ["job.succeeded"])
    assert caught.value.field == "url"
    assert "public host" in caught.value.message


def test_private_receivers_allowed_when_configured() -> None:
    url, _ = validate_webhook(
        "http://127.0.0.1/hook", "s" * 16, ["job.succeeded"], allow_private=True
    )
    assert url == "http://127.0.0.1/hook"


def test_public_receivers_are_accepted() -> None:
    url, _ = validate_webhook("https://hooks.example.com/gouache", "s" * 16, ["job.failed"])
    assert url == "https://hooks.example.com/gouache"
