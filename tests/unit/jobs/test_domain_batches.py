"""Batch rules: request validation, status from item counts, settling once, paging tokens."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from gouache.db import new_id
from gouache.runtime.errors import FailedPrecondition, InvalidArgument
from services.jobs.domain import batches as rules
from services.jobs.domain.batches import (
    Batch,
    BatchCursor,
    BatchRequest,
    BatchStatus,
    derive_status,
    validate_batch_request,
)
from services.jobs.domain.jobs import JobStatus
from services.jobs.domain.requests import StylizeParams
from services.jobs.domain.webhooks import validate_webhook

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
P, R, S, F, C = (
    JobStatus.PENDING,
    JobStatus.RUNNING,
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
    JobStatus.CANCELED,
)


def _request(**fields: object) -> BatchRequest:
    values: dict[str, object] = {
        "content_urls": ("http://h/v1/files/a", "http://h/v1/files/b"),
        "style_urls": ("http://h/v1/files/s",),
    }
    values.update(fields)
    return BatchRequest(**values)  # type: ignore[arg-type]


def _batch(total: int = 3, status: BatchStatus = BatchStatus.RUNNING) -> Batch:
    return Batch(
        batch_id=new_id("bat"),
        owner_id="usr_alice",
        status=status,
        total=total,
        content_urls=tuple(f"http://h/v1/files/{i}" for i in range(total)),
        style_urls=("http://h/v1/files/s",),
        requested_model_version="default",
        params=StylizeParams(),
        lane="export",
        no_cache=False,
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.mark.parametrize(
    ("counts", "total", "expected"),
    [
        ({}, 3, BatchStatus.RUNNING),
        ({S: 2, R: 1}, 3, BatchStatus.RUNNING),
        ({S: 2, P: 1}, 3, BatchStatus.RUNNING),
        # Two items created and final, a third not created yet: still running.
        ({S: 2}, 3, BatchStatus.RUNNING),
        ({S: 3}, 3, BatchStatus.SUCCEEDED),
        ({F: 3}, 3, BatchStatus.FAILED),
        ({F: 1, C: 2}, 3, BatchStatus.FAILED),
        ({S: 1, F: 2}, 3, BatchStatus.PARTIALLY_SUCCEEDED),
        ({S: 2, C: 1}, 3, BatchStatus.PARTIALLY_SUCCEEDED),
        ({S: 1}, 1, BatchStatus.SUCCEEDED),
    ],
)
def test_status_is_derived_from_the_items(
    counts: dict[JobStatus, int], total: int, expected: BatchStatus
) -> None:
    assert derive_status(counts, total) is expected


def test_settle_ends_a_running_batch_once() -> None:
    batch = _batch(total=2)
    assert rules.settle(batch, {S: 1, R: 1}, NOW) is None
    later = NOW + timedelta(seconds=5)
    settled = rules.settle(batch, {S: 1, F: 1}, later)
    assert settled is not None
    assert settled.status is BatchStatus.PARTIALLY_SUCCEEDED
    assert settled.finished_at == later
    # The same counts seen again (another completion, a redelivery) change nothing.
    assert rules.settle(settled, {S: 1, F: 1}, later) is None


def test_cancel_ends_a_running_batch_and_leaves_a_final_one() -> None:
    canceled = rules.cancel(_batch(), NOW)
    assert canceled is not None
    assert canceled.status is BatchStatus.CANCELED
    assert canceled.finished_at == NOW
    assert rules.cancel(canceled, NOW) is None
    assert rules.settle(canceled, {C: 3}, NOW) is None
    with pytest.raises(FailedPrecondition) as caught:
        rules.check_open(canceled)
    assert caught.value.reason == "batch_final"
    rules.check_open(_batch())


def test_a_valid_request_is_normalized() -> None:
    valid = validate_batch_request(
        _request(content_urls=(" http://h/v1/files/a ",), lane=""), max_items=500
    )
    assert valid.content_urls == ("http://h/v1/files/a",)
    assert valid.model_version == "default"
    assert valid.lane == "export"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"content_urls": ()}, "content_urls"),
        ({"content_urls": ("http://h/v1/files/a", " ", "http://h/v1/files/c")}, "content_urls[1]"),
        ({"content_urls": ("http://h/v1/files/a", "x" * 3000)}, "content_urls[1]"),
        ({"style_urls": ()}, "style_urls"),
        ({"style_urls": ("a", "b", "c", "d", "e")}, "style_urls"),
        ({"params": StylizeParams(alpha=2.0)}, "params.alpha"),
        ({"lane": "overnight"}, "lane"),
    ],
)
def test_bad_requests_name_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_batch_request(_request(**fields), max_items=500)
    assert caught.value.field == field


def test_too_many_items_are_refused() -> None:
    urls = tuple(f"http://h/v1/files/{i}" for i in range(4))
    validate_batch_request(_request(content_urls=urls[:3]), max_items=3)
    with pytest.raises(InvalidArgument) as caught:
        validate_batch_request(_request(content_urls=urls), max_items=3)
    assert caught.value.field == "content_urls"
    assert "at most 3" in caught.value.message


def test_fingerprint_ignores_key_and_no_cache_but_not_the_contents() -> None:
    base = _request()
    assert base.fingerprint() == _request(idempotency_key="k", no_cache=True).fingerprint()
    assert base.fingerprint() != _request(content_urls=("http://h/v1/files/a",)).fingerprint()
    assert base.fingerprint() != _request(lane="preview").fingerprint()


def test_item_keys_are_derived_from_the_batch() -> None:
    batch_id = new_id("bat")
    assert rules.item_key(batch_id, 0) != rules.item_key(batch_id, 1)
    assert rules.item_key(batch_id, 7) == rules.item_key(batch_id, 7)
    assert batch_id in rules.item_key(batch_id, 7)


def test_item_page_tokens_round_trip_and_refuse_garbage() -> None:
    assert rules.decode_item_token("") == 0
    assert rules.decode_item_token(rules.encode_item_token(250)) == 250
    for bad in ("nope", rules.encode_item_token(3)[:-2] + "!!", "eyJ2IjoxLCJpIjotMX0"):
        with pytest.raises(InvalidArgument):
            rules.decode_item_token(bad)
    assert rules.item_page_size(0) == 100
    assert rules.item_page_size(500) == 500
    with pytest.raises(InvalidArgument):
        rules.item_page_size(501)


def test_batch_cursor_round_trips() -> None:
    cursor = BatchCursor(NOW, new_id("bat"))
    assert BatchCursor.decode(cursor.encode()) == cursor
    with pytest.raises(InvalidArgument):
        BatchCursor.decode("garbage")


def test_finished_payload_carries_status_and_counts() -> None:
    batch = rules.settle(_batch(total=3), {S: 2, F: 1}, NOW)
    assert batch is not None
    body = json.loads(rules.finished_payload("dlv_x", NOW, batch, {S: 2, F: 1}))
    assert body["event"] == "batch.finished"
    assert body["batch"]["batch_id"] == batch.batch_id
    assert body["batch"]["status"] == "partially_succeeded"
    assert body["batch"]["total"] == 3
    assert body["batch"]["counts"] == {
        "pending": 0,
        "running": 0,
        "succeeded": 2,
        "failed": 1,
        "canceled": 0,
    }
    assert body["batch"]["finished_at"] == "2026-11-30T12:00:00.000Z"


def test_webhooks_may_subscribe_to_batch_finished() -> None:
    _, events = validate_webhook(
        "https://hooks.example.com/x", "s" * 16, ["batch.finished", "job.failed"]
    )
    assert events == ("batch.finished", "job.failed")
