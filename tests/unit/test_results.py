"""The result link as the protobuf messages carry it: Timestamps become aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from gouache.results import ResultLink

URL_ENDS = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
KEPT_UNTIL = datetime(2026, 12, 31, tzinfo=UTC)


def _timestamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def test_a_link_with_a_retention_end() -> None:
    link = ResultLink.from_timestamps(
        "http://127.0.0.1/f/img_1?sig=x", _timestamp(URL_ENDS), _timestamp(KEPT_UNTIL)
    )
    assert link == ResultLink("http://127.0.0.1/f/img_1?sig=x", URL_ENDS, KEPT_UNTIL)
    assert link.url_expires_at.tzinfo is UTC


def test_a_result_kept_until_deleted_has_no_retention_end() -> None:
    link = ResultLink.from_timestamps("u", _timestamp(URL_ENDS), None)
    assert link.result_expires_at is None
