"""A result's signed GET URL as it crosses services, one type for the whole way.

storage signs it in the same UploadImage call that stores the result
(`download_url_ttl_seconds`), tiling passes it on in ExecutionSucceeded, and jobs hands
it out for the first reads of the job instead of asking storage to sign again
(`services/jobs/result_links.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.protobuf.timestamp_pb2 import Timestamp


@dataclass(frozen=True)
class ResultLink:
    """A signed GET URL for a result, its expiry, and when the result's retention ends
    (None: kept until deleted)."""

    url: str
    url_expires_at: datetime
    result_expires_at: datetime | None = None

    @classmethod
    def from_timestamps(
        cls, url: str, url_expires_at: Timestamp, result_expires_at: Timestamp | None
    ) -> ResultLink:
        """The link as the protobuf messages carry it (UploadImageResponse,
        ExecutionSucceeded), with their Timestamps as aware UTC datetimes."""
        return cls(
            url=url,
            url_expires_at=url_expires_at.ToDatetime(tzinfo=UTC),
            result_expires_at=(
                None if result_expires_at is None else result_expires_at.ToDatetime(tzinfo=UTC)
            ),
        )
